"""Issue #29: non-square (C, H, W) images, H != W, end to end: config, data, networks, grids, evaluation.

Sizes are written H x W (PyTorch's (C, H, W) order); Pillow's `size` is (W, H).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from ganstab.cli import main
from ganstab.config import ConfigError, DataConfig, ModelConfig, dump_yaml, image_hw, load_config, read_yaml, validate
from ganstab.data import dataset_shape, make_dataset
from ganstab.data.prepare import archive_name
from ganstab.metrics.run_eval import to_data_size
from ganstab.models import build_discriminator, build_generator
from ganstab.models.dcgan import conv_plan_hw, plan_sides
from ganstab.models.resnet import resnet_plan
from ganstab.rundir import read_jsonl
from ganstab.sampling import image_grid, save_image_grid

H, W = 48, 32  # the 48x32 data: 48 rows, 32 columns


def _config(overrides: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(None, overrides)


def _config_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        _config(overrides)
    return str(info.value)


def _images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, height, width, 3): a bright ellipse on black, 12 rows by 8 columns, at a random place."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    out = np.zeros((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        top, left = rng.integers(6, height - 6), rng.integers(4, width - 4)
        out[i][(rows - top) ** 2 / 36 + (cols - left) ** 2 / 16 < 1] = rng.integers(100, 256, 3)
    return out


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("given,stored,hw", [
    ("48x32", [48, 32], (48, 32)), ("[48, 32]", [48, 32], (48, 32)), ("32X48", [32, 48], (32, 48)),
    ("[16, 16]", 16, (16, 16)), ("16x16", 16, (16, 16)), ("28", 28, (28, 28)),
])
def test_image_size_takes_a_side_or_height_and_width(given: str, stored, hw: tuple[int, int]) -> None:
    cfg = _config([f"data.image_size={given}"])
    assert cfg.data.image_size == stored
    assert image_hw(cfg.data.image_size) == hw
    assert image_hw(None) is None


@pytest.mark.parametrize("given,message", [
    ("0", "config key 'data.image_size': Input should be greater than 0, got 0"),
    ("[48, 0]", "config key 'data.image_size': Input should be greater than 0, got 0"),
    ("2048x32", "config key 'data.image_size': Input should be less than or equal to 1024, got 2048"),
    ("[48, 32, 3]", "config key 'data.image_size' must be one side N or two sides [H, W] (or \"HxW\"), "
                    "got [48, 32, 3]"),
    ("48by32", "config key 'data.image_size' must be one side N or two sides [H, W] (or \"HxW\"), got '48by32'"),
    ("[48.5, 32]", "config key 'data.image_size' must be one side N or two sides [H, W] (or \"HxW\"), "
                   "got [48.5, 32]"),
])
def test_bad_image_size_is_one_line(given: str, message: str) -> None:
    assert _config_error([f"data.image_size={given}"]) == message


def test_image_size_survives_the_run_folder_yaml(tmp_path: Path) -> None:
    cfg = _config(["data.image_size=48x32"])
    (tmp_path / "config.yaml").write_text(dump_yaml(cfg))
    assert read_yaml(tmp_path / "config.yaml")["data"]["image_size"] == [48, 32]
    assert validate(read_yaml(tmp_path / "config.yaml")).data.image_size == [48, 32]


def test_bad_image_size_on_the_command_line_exits_2(capsys) -> None:
    assert main(["train", "data.image_size=48x"]) == 2
    err = capsys.readouterr().err
    assert err == ("ganstab: error: config key 'data.image_size' must be one side N or two sides [H, W] "
                   "(or \"HxW\"), got '48x'\n")


# ---------------------------------------------------------------- data


def test_npz_folder_and_stylegan_zip_keep_48x32(tmp_path: Path) -> None:
    arr = _images(6, H, W)
    np.savez(tmp_path / "x.npz", x=arr)
    folder = tmp_path / "imgs"
    folder.mkdir()
    zipped = tmp_path / "sg"
    for k, image in enumerate(arr):
        Image.fromarray(image).save(folder / f"{k}.png")
        (zipped / archive_name(k)).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(zipped / archive_name(k))
    (zipped / "dataset.json").write_text(json.dumps({"labels": None}))
    expected = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    for cfg in (DataConfig(name="npz", path=str(tmp_path / "x.npz")), DataConfig(name="folder", path=str(folder)),
                DataConfig(name="folder", path=str(zipped))):
        source = make_dataset(cfg, seed=0)
        assert source.shape == (3, H, W)
        torch.testing.assert_close(source.train, expected, rtol=0, atol=1e-6)
    streamed = make_dataset(DataConfig(name="folder", path=str(zipped), stream=True), seed=0)
    assert streamed.shape == (3, H, W) and streamed.batch(0, 2).shape == (2, 3, H, W)


def test_image_size_resizes_each_side(tmp_path: Path) -> None:
    arr = np.zeros((2, H, W, 1), dtype=np.uint8)
    arr[:, : H // 2] = 255  # the top half white
    np.savez(tmp_path / "x.npz", x=arr)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k, image in enumerate(arr):
        Image.fromarray(image[:, :, 0]).save(folder / f"{k}.png")
    expected = torch.full((2, 1, 24, 16), -1.0)
    expected[:, :, :12] = 1.0
    for cfg in (DataConfig(name="npz", path=str(tmp_path / "x.npz"), image_size=[24, 16]),
                DataConfig(name="folder", path=str(folder), image_size="24x16"),
                DataConfig(name="folder", path=str(folder), image_size=[24, 16], stream=True)):
        source = make_dataset(cfg, seed=0)
        assert source.shape == (1, 24, 16)
        images = source.batch(0, 2) if cfg.stream else source.train
        if cfg.name == "npz":  # area resampling of a 2x2 block: exact
            torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
        else:  # Pillow's bicubic rings at the edge (rows 11, 12); away from it the halves are exact
            torch.testing.assert_close(images[:, :, :10], expected[:, :, :10], rtol=0, atol=1e-6)
            torch.testing.assert_close(images[:, :, 14:], expected[:, :, 14:], rtol=0, atol=1e-6)
    assert dataset_shape(DataConfig(name="digits", image_size=[16, 8])) == (1, 16, 8)
    assert make_dataset(DataConfig(name="digits", limit=10, image_size=[16, 8]), seed=0).train.shape == (10, 1, 16, 8)


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("height,width,plan", [
    (48, 32, (6, 4, 3)), (32, 48, (4, 6, 3)), (64, 48, (4, 3, 4)), (64, 32, (8, 4, 3)), (12, 10, (6, 5, 1)),
    (32, 32, (4, 4, 3)), (28, 28, (7, 7, 2)),
    (28, 14, None),  # 7*2^2 and 7*2^1 share no k
    (96, 32, None),  # 12*2^3 x 4*2^3: 12 > 8
    (48, 30, None), (9, 9, None), (4, 4, None),
])
def test_plan_sides(height: int, width: int, plan) -> None:
    assert plan_sides(height, width) == plan


def test_resnet_plan_pads_28_and_needs_three_steps() -> None:
    assert resnet_plan(48, 32) == (6, 4, 3)
    assert resnet_plan(28, 48) == (4, 6, 3)  # 28 is read as 32
    assert resnet_plan(28, 28) == (4, 4, 3) and resnet_plan(64, 64) == (4, 4, 4)
    assert resnet_plan(24, 16) is None  # 3*2^3 x 2*2^3 (2 < 3), or 6*2^2 x 4*2^2 (two up blocks < 3)


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
@pytest.mark.parametrize("height,width", [(48, 32), (32, 48)])
def test_g_output_and_d_input_shapes(arch: str, height: int, width: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, latent_dim=8, width=8, hidden=[16, 16] if arch == "mlp" else None)
    g = build_generator(cfg, (3, height, width))
    d = build_discriminator(cfg, (3, height, width))
    images = g(torch.randn(5, 8))
    assert images.shape == (5, 3, height, width)
    assert d(images).shape == (5,)
    assert d(torch.randn(5, 3, height, width)).shape == (5,)
    if arch == "dcgan":  # G projects to (32 channels, 6, 4) (or 4, 6); D's head reads the same map
        assert g.base == (height // 8, width // 8)
        assert g.project.weight.shape == (8 * 4 * (height // 8) * (width // 8), 8)
        head = d.head.parametrizations.weight.original if parametrize.is_parametrized(d.head) else d.head.weight
        assert head.shape == (1, 32 * 24)
        assert len([m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]) == 3
    if arch == "resnet":  # three up blocks from 6x4; D halves twice, to 12x8
        assert g.base == (height // 8, width // 8) and len(g.blocks) == 3
        assert d.blocks(torch.randn(1, 3, height, width)).shape == (1, 8, height // 4, width // 4)


def test_conditional_dcgan_at_48x32() -> None:
    cfg = ModelConfig(arch="dcgan", latent_dim=8, width=8, conditional=True)
    g = build_generator(cfg, (1, H, W), num_classes=3)
    d = build_discriminator(cfg, (1, H, W), num_classes=3)
    labels = torch.tensor([0, 2])
    assert g(torch.randn(2, 8), labels).shape == (2, 1, H, W)
    assert d(g(torch.randn(2, 8), labels), labels).shape == (2,)


DCGAN_48X30 = ("model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
               "(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got 48x30; set data.image_size=32 (or 28, 64, [48, 32]) "
               "to resize")
RESNET_24X16 = ("model.arch=resnet needs image sides b*2^k with b in 3..8 and the same k >= 3 for height and width "
                "(28 is padded to 32; e.g. 32, 48, 64, 48x32), got 24x16; "
                "set data.image_size=32 (or 64, or [48, 32]) to resize")


def test_sides_that_cannot_be_planned_are_one_line_refusals(capsys, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^48x30 is not b_h\*2\^k x b_w\*2\^k with b in 3..8 and k >= 1$"):
        conv_plan_hw(48, 30)
    for arch, size, message in (("dcgan", "48x30", DCGAN_48X30), ("resnet", "24x16", RESNET_24X16)):
        out = tmp_path / arch
        assert main(["train", f"model.arch={arch}", f"data.image_size={size}", f"out={out}"]) == 2
        captured = capsys.readouterr()
        assert captured.err == f"ganstab: error: {message}\n"
        assert not out.exists()


# ---------------------------------------------------------------- grids and evaluation helpers


def test_grid_tiles_tall_images() -> None:
    images = torch.full((5, 1, 6, 4), -1.0)
    images[3] = 1.0
    grid = image_grid(images, nrow=3, pad=1)
    assert grid.shape == (2 * (6 + 1) + 1, 3 * (4 + 1) + 1, 1)  # 2 rows of 6-pixel tiles, 3 columns of 4
    assert (grid[8:14, 1:5] == 255).all() and grid[8:14, 1:5].size == 24  # the 4th image: row 1, column 0
    assert int((grid == 255).sum()) == 24


def test_to_data_size_keeps_h_by_w_and_crops_per_side() -> None:
    samples = torch.randn(2, 1, H, W)
    assert to_data_size(samples, (H, W)) is samples
    small = torch.arange(16.0).view(1, 1, 4, 4)
    out = to_data_size(small, (12, 8))  # nearest to 16x8 (each row 4 times, each column twice), then rows 2..13
    assert out.shape == (1, 1, 12, 8)
    expected = small[0, 0].repeat_interleave(4, dim=0).repeat_interleave(2, dim=1)[2:14]
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=0)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def rect_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rect") / "rect.npz"
    np.savez(path, x=_images(200, H, W))
    return path


@pytest.fixture(scope="module")
def evaluator_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluator")


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_train_sample_and_evaluate_48x32(arch: str, rect_npz: Path, evaluator_cache: Path, tmp_path: Path,
                                         capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "data.name=npz", f"data.path={rect_npz}", f"model.arch={arch}", "model.width=8",
            "model.latent_dim=16", "train.steps=6", "train.batch_size=16", "log.progress=false", "log.every=3",
            "log.sample_every=3", "log.n_samples=6", "eval.every=0", "eval.n=100", "eval.evaluator_epochs=1",
            f"eval.cache_dir={evaluator_cache}", "train.device=cpu", f"out={out}"]
    if arch == "mlp":
        argv.append("model.hidden=[32,32]")
    assert main(argv) == 0
    capsys.readouterr()
    lines = read_jsonl(out / "metrics.jsonl")
    final = [line for line in lines if line.get("final")]
    assert [line["eval_split"] for line in final] == ["validation", "test"]  # the final line and its test line
    assert all(math.isfinite(line["eval_fd"]) and line["eval_fd"] >= 0.0 for line in final)
    assert json.loads((out / "generator.json").read_text())["data"]["shape"] == [3, H, W]
    assert "samples at step 6" in (out / "report.html").read_text()
    # training's own grid: 6 samples, 3 per row, 32-pixel short side -> upscale max(1, min(8, 256 // 96)) = 2
    with Image.open(out / "samples" / "step_0000006.png") as img:
        assert img.size == (3 * (2 * W + 2) + 2, 2 * (2 * H + 2) + 2) == (200, 198) and img.mode == "RGB"
    grid = tmp_path / "grid.png"
    assert main(["sample", "--run", str(out), "--n", "10", "--out", str(grid)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 10 samples to {grid}"
    with Image.open(grid) as img:  # 10 samples: 4 per row, 3 rows; 256 // (32 * 4) = 2
        assert img.size == (4 * (2 * W + 2) + 2, 3 * (2 * H + 2) + 2) == (266, 296)
    npy = tmp_path / "s.npy"
    assert main(["sample", "--run", str(out), "--n", "3", "--out", str(npy), "--format", "npy"]) == 0
    assert np.load(npy).shape == (3, 3, H, W)
    assert main(["eval", "--run", str(out), "--n", "100"]) == 0
    printed = capsys.readouterr().out
    fd_line = next(line for line in printed.splitlines() if line.split()[:1] == ["fd"])
    assert math.isfinite(float(fd_line.split()[1]))


@pytest.mark.parametrize("n,height,width,size", [
    (64, H, W, (8 * (W + 2) + 2, 8 * (H + 2) + 2)),  # 8 x 8 tiles; 256 // (32 * 8) = 1, short side 32: no upscale
    (64, W, H, (8 * (H + 2) + 2, 8 * (W + 2) + 2)),  # 256 // (48 * 8) = 0 -> 1
    (4, 16, 40, (2 * (3 * 40 + 2) + 2, 2 * (3 * 16 + 2) + 2)),  # 2 per row: 256 // 80 = 3
    (4, 20, 8, (2 * (8 * 8 + 2) + 2, 2 * (8 * 20 + 2) + 2)),  # 256 // 16 = 16, at most 8
])
def test_save_image_grid_pixel_size(n: int, height: int, width: int, size: tuple[int, int], tmp_path: Path) -> None:
    path = save_image_grid(torch.zeros(n, 3, height, width), tmp_path / "g.png")
    with Image.open(path) as img:  # Pillow's size is (W, H)
        assert img.size == size
