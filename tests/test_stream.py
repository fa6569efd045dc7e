"""data.stream=true: image folders read on demand through a DataLoader and a DistributedSampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstab.config import ConfigError
from ganstab.pipeline import load_config
from ganstab.data import make_dataset
from ganstab.data.stream import EVALUATOR_SUBSET, StreamingSource
from ganstab.errors import DataError

N = 24


def numbered_folder(folder: Path, n: int = N, side: int = 4) -> Path:
    """n gray PNGs; image i is filled with 10 * i mod 256, so (for n <= 25) a batch tells which files it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((side, side), (10 * i) % 256, dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


def source(folder: Path, seed: int = 3, workers: int = 0) -> StreamingSource:
    cfg = load_config(overrides=["data.name=folder", f"data.path={folder}", "data.stream=true",
                                 f"data.workers={workers}", f"seed={seed}", "model.arch=mlp"])
    src = make_dataset(cfg.data, seed)
    assert isinstance(src, StreamingSource)
    return src


def ids(batch: torch.Tensor) -> list[int]:
    """File numbers of the images in a batch."""
    values = ((batch[:, 0, 0, 0] + 1.0) * 127.5).round().long()
    return [int(v) // 10 for v in values]


def test_shape_and_values(tmp_path: Path) -> None:
    src = source(numbered_folder(tmp_path / "f"))
    assert src.shape == (1, 4, 4) and len(src) == N
    batch = src.batch(0, 6)
    assert batch.shape == (6, 1, 4, 4) and batch.dtype == torch.float32
    first = ids(batch)[0]
    torch.testing.assert_close(batch[0], torch.full((1, 4, 4), 10 * first / 127.5 - 1.0))


def test_epoch_order_is_the_distributed_sampler_permutation(tmp_path: Path) -> None:
    """Epoch e visits torch.randperm(N) seeded with seed + e (DistributedSampler after set_epoch(e))."""
    src = source(numbered_folder(tmp_path / "f"), seed=3)
    for epoch in range(2):
        expected = torch.randperm(N, generator=torch.Generator().manual_seed(3 + epoch)).tolist()
        got = [i for b in range(N // 6) for i in ids(src.batch(epoch * (N // 6) + b, 6))]
        assert got == expected
    first = [i for b in range(4) for i in ids(src.batch(b, 6))]
    second = [i for b in range(4, 8) for i in ids(src.batch(b, 6))]
    assert sorted(first) == sorted(second) == list(range(N)) and first != second


def test_ranks_split_the_global_batch(tmp_path: Path) -> None:
    """2 ranks x batch 4 read the same 8 files per batch index as 1 process x batch 8, disjointly."""
    folder = numbered_folder(tmp_path / "f")
    single, rank0, rank1 = source(folder), source(folder), source(folder)
    for index in range(2 * (N // 8)):  # two epochs
        a, b = ids(rank0.rank_batch(index, 4, 0, 2)), ids(rank1.rank_batch(index, 4, 1, 2))
        assert not set(a) & set(b)
        assert sorted(a + b) == sorted(ids(single.batch(index, 8)))


def test_resume_mid_epoch_reopens_at_the_same_batch(tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "f")
    straight = source(folder)
    run = [ids(straight.batch(i, 5)) for i in range(7)]  # 4 batches per epoch: crosses into epoch 1
    resumed = source(folder)
    assert [ids(resumed.batch(i, 5)) for i in range(3, 7)] == run[3:]
    assert [ids(resumed.batch(i, 5)) for i in (1, 2)] == run[1:3]  # jumping back re-opens the loader


def test_worker_processes_give_the_same_batches(tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "f")
    plain, workers = source(folder), source(folder, workers=2)
    assert [ids(plain.batch(i, 6)) for i in range(5)] == [ids(workers.batch(i, 6)) for i in range(5)]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_that_cannot_be_decoded_is_named(tmp_path: Path, workers: int) -> None:
    folder = numbered_folder(tmp_path / "f", n=8)
    good = (folder / "img000.png").read_bytes()
    (folder / "img000.png").write_bytes(good[:44])  # the header survives, the pixel data does not
    src = source(folder, workers=workers)
    with pytest.raises(DataError) as err:
        for i in range(4):
            src.batch(i, 2)
    message = str(err.value)
    assert message == f"{str(folder / 'img000.png')!r} could not be decoded (OSError); replace or remove the file"


def test_unreadable_files_are_skipped_with_a_note(tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "f", n=8)
    (folder / "notes.txt").write_text("not an image")
    src = source(folder)
    assert len(src) == 8
    assert src.notes == [f"data: skipped 1 file in {folder} that are not readable images; streaming 8 images"]


def test_size_channels_and_limit(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 20 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = load_config(overrides=["data.name=folder", f"data.path={folder}", "data.stream=true", "data.image_size=4",
                                 "data.limit=5", "model.arch=mlp"])
    src = make_dataset(cfg.data, 0)
    assert src.shape == (3, 4, 4) and len(src) == 5
    assert src.batch(0, 5).shape == (5, 3, 4, 4)


def test_evaluator_data_and_reference_are_seeded_subsets(tmp_path: Path) -> None:
    src = source(numbered_folder(tmp_path / "f"))
    train, labels, test, test_labels = src.evaluator_data()
    assert train.shape == (N, 1, 4, 4) and labels is None and test is None and test_labels is None
    assert sorted(ids(train)) == list(range(N))
    assert EVALUATOR_SUBSET == 10_000
    ref = src.reference("test", 5)
    assert ref.shape == (5, 1, 4, 4)
    torch.testing.assert_close(ref, source(tmp_path / "f").reference("test", 5))
    val = src.reference("validation", 5, val_n=3)
    assert val.shape == (3, 1, 4, 4) and set(ids(val)).isdisjoint(ids(ref))  # no image in both
    assert len(src.reference("validation", N, val_n=N)) == N // 2  # validation: at most half the images


def test_the_real_floors_images_are_in_neither_reference(tmp_path: Path) -> None:
    src = source(numbered_folder(tmp_path / "f"))
    test, val = ids(src.reference("test", 5, val_n=3)), ids(src.reference("validation", 5, val_n=3))
    spare = src.unreferenced(5, 3, 100, torch.Generator().manual_seed(0))
    assert spare.shape == (N - 8, 1, 4, 4)  # every one of the 16 images outside the 5 test and 3 validation ones
    assert sorted(ids(spare) + test + val) == list(range(N))
    assert len(src.unreferenced(5, 3, 4, torch.Generator().manual_seed(0))) == 4
    assert src.unreferenced(N, N, 100, torch.Generator().manual_seed(0)) is None  # both references take all


def test_batch_larger_than_the_folder(tmp_path: Path) -> None:
    src = source(numbered_folder(tmp_path / "f", n=6))
    with pytest.raises(DataError, match="^image folder has 6 images, fewer than one global batch of 8; "
                                        "lower train.batch_size or add images$"):
        src.batch(0, 8)


def test_stream_needs_a_folder_dataset() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["data.name=digits", "data.stream=true"])
    assert str(err.value) == ("data.stream=true reads image files on demand and works with data.name=folder only; "
                              "digits is held in memory, so remove data.stream")
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["data.workers=2"])
    assert str(err.value) == ("data.workers sets DataLoader processes for data.stream=true; set data.stream=true "
                              "or remove data.workers")


def test_training_on_a_streamed_folder_resumes_exactly(tmp_path: Path) -> None:
    """12 steps straight == 6 steps, then --resume to 12 (the loader re-opens mid-epoch at the right batch)."""
    from safetensors.torch import load_file

    from ganstab.train import train

    folder = numbered_folder(tmp_path / "f", n=40, side=8)
    common = [f"data.path={folder}", "data.name=folder", "data.stream=true", "model.arch=mlp", "model.hidden=[16]",
              "train.batch_size=8", "eval.final=false", "log.every=3", "log.progress=false", "train.ema=0",
              "log.sample_every=1000", "log.checkpoint_every=6", "train.threads=1"]
    straight = train(load_config(overrides=[*common, "train.steps=12", f"out={tmp_path / 'a'}"]), echo=lambda m: None)
    assert straight.steps == 12 and straight.images_seen == 96  # 5 batches per epoch: crosses two epochs
    train(load_config(overrides=[*common, "train.steps=6", f"out={tmp_path / 'b'}"]), echo=lambda m: None)
    resumed = train(load_config(overrides=[*common, "train.steps=12", f"out={tmp_path / 'b'}"]), resume=True,
                    echo=lambda m: None)
    assert resumed.steps == 12
    a, b = load_file(str(tmp_path / "a" / "generator.safetensors")), load_file(str(tmp_path / "b" / "generator.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    for folder, message in ((tmp_path / "nope", f"data.path {str(tmp_path / 'nope')!r} is not a folder; pass a folder of images"),
                            (tmp_path, f"image folder {str(tmp_path)!r} is empty; put PNG/JPEG images in it")):
        cfg = load_config(overrides=["data.name=folder", f"data.path={folder}", "data.stream=true", "model.arch=mlp"])
        with pytest.raises(DataError) as err:
            make_dataset(cfg.data, 0)
        assert str(err.value) == message
