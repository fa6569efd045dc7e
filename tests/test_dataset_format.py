"""The StyleGAN family's dataset format both ways (`ganstab data prepare`, data.name=folder) and
StudioGAN's train/valid layout: exact round trips, the layout's details, transforms, and bad inputs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstab.cli import main
from ganstab.cli.data import PrepareProgress
from ganstab.config import DataConfig
from ganstab.data import DATASETS, make_dataset
from ganstab.data.archive import detect_layout, parse_labels
from ganstab.data.prepare import archive_name, fit_image, open_source, prepare_dataset
from ganstab.errors import DataError


def _npz(path: Path, n: int = 40, channels: int = 3, size: int = 16, classes: int = 4) -> Path:
    """A uint8 npz of random images with labels 0..classes-1 (none when classes is 0)."""
    rng = np.random.default_rng(1)
    shape = (n, size, size, channels) if channels == 3 else (n, size, size)
    labels = {"y": np.arange(n) % classes} if classes else {}
    np.savez(path, x=rng.integers(0, 256, shape, dtype=np.uint8), **labels)
    return path


def _png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    channels = 3 if mode == "RGB" else 1
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode).save(path)
    return path


def _stylegan_folder(root: Path, labels: object, sizes: tuple = ((8, 8), (8, 8), (8, 8))) -> Path:
    """A hand-written StyleGAN dataset: 00000/img0000000k.png plus dataset.json holding `labels`."""
    for k, size in enumerate(sizes):
        _png(root / archive_name(k), size, value=k)
    (root / "dataset.json").write_text(json.dumps({"labels": labels}) if labels != "RAW" else "[1, 2]")
    return root


def _run(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), [line for line in captured.err.splitlines() if line.strip()]


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dest", ["out.zip", "out"])
def test_prepare_npz_reads_back_identical_images_and_labels(tmp_path: Path, capsys, dest: str) -> None:
    src = _npz(tmp_path / "data.npz")
    code, out, err = _run(["data", "prepare", str(src), str(tmp_path / dest)], capsys)
    assert code == 0 and err == []
    assert out[-1] == (f"wrote 40 images of 16x16x3 (labels of 4 classes) to {tmp_path / dest}; transform resize, "
                       "resize filter lanczos")
    original = make_dataset(DataConfig(name="npz", path=str(src)))
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / dest)))
    assert back.shape == (3, 16, 16) and len(back) == 40
    assert torch.equal(back.train, original.train)
    assert torch.equal(back.labels, original.labels)
    assert back.labels.tolist() == [k % 4 for k in range(40)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", dest]  # the temporary name is gone


def test_prepare_class_folder_reads_back_identical_gray_images(tmp_path: Path) -> None:
    for k in range(6):
        _png(tmp_path / "src" / ("cat" if k % 2 else "dog") / f"{k}.png", (10, 10), "L", value=k)
    src = open_source(str(tmp_path / "src"))
    result = prepare_dataset(src, tmp_path / "out.zip")
    assert (result.written, result.resolution, result.channels, result.classes) == (6, 10, 1, 2)
    original = make_dataset(DataConfig(name="folder", path=str(tmp_path / "src")))
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / "out.zip")))
    # files are read in sorted order: cat/1, cat/3, cat/5, dog/0, dog/2, dog/4
    assert back.labels.tolist() == [0, 0, 0, 1, 1, 1] == original.labels.tolist()
    assert back.shape == (1, 10, 10)
    assert torch.equal(back.train, original.train)


def test_prepare_fashion_mnist_test_split_round_trip(tmp_path: Path, capsys) -> None:
    code, out, err = _run(["data", "prepare", "fashion-mnist", str(tmp_path / "fm.zip"), "--split", "test",
                           "--max-images", "300"], capsys)
    assert code == 0 and err == []
    assert out[-2].startswith("wrote 300 images of 28x28x1 (labels of 10 classes)")
    assert out[-1].startswith("note: 28 is not a power of two")
    original = make_dataset(DataConfig(name="fashion-mnist"))
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / "fm.zip")))
    assert torch.equal(back.train, original.test[:300])
    assert torch.equal(back.labels, original.test_labels[:300])


# ---------------------------------------------------------------- the layout

def test_layout_names_json_and_uncompressed_png(tmp_path: Path) -> None:
    src = _npz(tmp_path / "g.npz", n=1002, channels=1, size=4, classes=3)
    prepare_dataset(open_source(str(src)), tmp_path / "d.zip")
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        names = z.namelist()
        assert names[:2] == ["00000/img00000000.png", "00000/img00000001.png"]
        assert names[999:1003] == ["00000/img00000999.png", "00001/img00001000.png", "00001/img00001001.png",
                                   "dataset.json"]
        assert {info.compress_type for info in z.infolist()} == {zipfile.ZIP_STORED}
        doc = json.loads(z.read("dataset.json"))
        assert list(doc) == ["labels"] and len(doc["labels"]) == 1002
        assert doc["labels"][:2] == [["00000/img00000000.png", 0], ["00000/img00000001.png", 1]]
        assert doc["labels"][1001] == ["00001/img00001001.png", 1001 % 3]
        with z.open("00001/img00001000.png") as f:
            img = Image.open(f)
            assert (img.format, img.mode, img.size) == ("PNG", "L", (4, 4))
    assert archive_name(12345) == "00012/img00012345.png"


def test_unlabelled_source_writes_null_labels(tmp_path: Path) -> None:
    for k in range(3):
        _png(tmp_path / "src" / f"{k}.png", value=k)
    prepare_dataset(open_source(str(tmp_path / "src")), tmp_path / "d")
    assert json.loads((tmp_path / "d" / "dataset.json").read_text()) == {"labels": None}
    assert sorted(p.relative_to(tmp_path / "d").as_posix() for p in (tmp_path / "d").rglob("*.png")) == [
        "00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png"]
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / "d")))
    assert back.labels is None and len(back) == 3  # 00000/ is not taken for a class folder


def test_hand_written_dataset_json_backslashes_and_order(tmp_path: Path) -> None:
    root = _stylegan_folder(tmp_path / "sg", [["00000\\img00000002.png", 5], ["00000/img00000000.png", 3],
                                              ["00000/img00000001.png", 0]])
    source = make_dataset(DataConfig(name="folder", path=str(root)))
    assert source.labels.tolist() == [3, 0, 5]
    expected = np.asarray(Image.open(root / "00000/img00000001.png"), dtype=np.float32) / 127.5 - 1.0
    assert torch.equal(source.train[1], torch.from_numpy(expected).permute(2, 0, 1))
    assert detect_layout(root) == "stylegan" and detect_layout(tmp_path / "x.zip") == "stylegan"


def test_unreadable_member_of_a_zip_is_skipped_with_its_label(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        for k in (0, 2, 3):
            z.write(_png(tmp_path / f"{k}.png", value=k), archive_name(k))
        z.writestr(archive_name(1), b"\x89PNG\r\n\x1a\n truncated")
        z.writestr("README.txt", "not an image, not counted")
        z.writestr("dataset.json", json.dumps({"labels": [[archive_name(k), k + 5] for k in range(4)]}))
    source = make_dataset(DataConfig(name="folder", path=str(tmp_path / "d.zip")))
    assert source.labels.tolist() == [5, 7, 8] and len(source) == 3
    assert source.notes == [f"data: skipped 1 file in {tmp_path / 'd.zip'} that is not a readable image "
                            "(00000/img00000001.png); using 3 images"]


def test_parse_labels_values() -> None:
    assert parse_labels(b'{"labels": null}', "f") is None
    assert parse_labels(b'{"labels": [["a\\\\b.png", 2], ["c.png", 0]], "extra": 1}', "f") == {"a/b.png": 2,
                                                                                             "c.png": 0}


@pytest.mark.parametrize("stray, named", [("c/0.png", "c"), ("0.png", "(no class folder)")])
def test_a_stray_held_out_class_is_refused_by_training_and_by_prepare_alike(tmp_path: Path, stray: str,
                                                                            named: str) -> None:
    for relative in ("train/a/0.png", "train/b/0.png", "valid/a/0.png", f"valid/{stray}"):
        _png(tmp_path / "sg" / relative)
    message = f"'{tmp_path / 'sg' / 'valid'}' has images in '{named}', a class folder train/ lacks; use the same " \
              "class folders in both splits"
    with pytest.raises(DataError) as read:
        make_dataset(DataConfig(name="folder", path=str(tmp_path / "sg")), seed=0)
    with pytest.raises(DataError) as prepared:
        open_source(str(tmp_path / "sg"), split="test")
    assert str(read.value) == str(prepared.value) == message


def test_studiogan_train_and_valid(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("valid", 2)):
        for cls in ("bird", "ant"):
            for k in range(count):
                _png(tmp_path / "sg" / split / cls / f"{k}.png", value=hash((split, cls, k)) % 1000)
    assert detect_layout(tmp_path / "sg") == "studiogan"
    source = make_dataset(DataConfig(name="folder", path=str(tmp_path / "sg")))
    assert (len(source), tuple(source.test.shape)) == (6, (4, 3, 8, 8))
    assert source.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert source.test_labels.tolist() == [0, 0, 1, 1]
    assert source.class_names == ["ant", "bird"]
    expected = np.asarray(Image.open(tmp_path / "sg/valid/bird/1.png"), dtype=np.float32) / 127.5 - 1.0
    assert torch.equal(source.test[3], torch.from_numpy(expected).permute(2, 0, 1))
    result = prepare_dataset(open_source(str(tmp_path / "sg"), split="test"), tmp_path / "valid.zip")
    assert (result.written, result.classes) == (4, 2)
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / "valid.zip")))
    assert torch.equal(back.train, source.test) and torch.equal(back.labels, source.test_labels)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_zip_gives_the_held_images_in_the_sampler_order(tmp_path: Path, workers: int) -> None:
    prepare_dataset(open_source(str(_npz(tmp_path / "d.npz", n=24, classes=0))), tmp_path / "d.zip")
    with zipfile.ZipFile(tmp_path / "d.zip", "a") as z:
        z.writestr("00000/img00000024.png", b"\x89PNG\r\n\x1a\n truncated")  # skipped by the header scan
    held = make_dataset(DataConfig(name="folder", path=str(tmp_path / "d.zip")))
    streamed = make_dataset(DataConfig(name="folder", path=str(tmp_path / "d.zip"), stream=True, workers=workers))
    assert type(streamed).__name__ == "StreamingSource" and (len(streamed), streamed.shape) == (24, (3, 16, 16))
    assert streamed.notes == [f"data: skipped 1 file in {tmp_path / 'd.zip'} that are not readable images; "
                              "streaming 24 images"]
    for index in (0, 1, 2, 3):  # two epochs of 3 batches of 8 (+ one into the second)
        order = list(streamed.epoch_sampler(index // 3, 0, 1))[(index % 3) * 8:(index % 3 + 1) * 8]
        assert torch.equal(streamed.batch(index, 8), held.train[order])


def test_streamed_member_that_fails_to_decode_is_named(tmp_path: Path) -> None:
    prepare_dataset(open_source(str(_npz(tmp_path / "d.npz", n=8, size=64))), tmp_path / "d.zip")  # 12 kB members
    raw = (tmp_path / "d.zip").read_bytes()
    member = raw.index(b"IDAT", raw.index(b"00000/img00000003.png"))
    (tmp_path / "d.zip").write_bytes(raw[:member + 8] + bytes(64) + raw[member + 72:])  # header intact, data broken
    streamed = make_dataset(DataConfig(name="folder", path=str(tmp_path / "d.zip"), stream=True))
    with pytest.raises(DataError) as info:
        streamed.batch(0, 8)
    assert str(info.value) == (f"'00000/img00000003.png' in '{tmp_path / 'd.zip'}' could not be decoded "
                               "(BadZipFile); replace or remove the file")


# ---------------------------------------------------------------- transforms, skips, progress

def _ramp(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.arange(w * h, dtype=np.uint8).reshape(h, w), "L")


def test_center_crop_keeps_the_central_square() -> None:
    out = np.asarray(fit_image(_ramp(6, 4), 4, "center-crop", "lanczos"))
    assert out.tolist() == [[1, 2, 3, 4], [7, 8, 9, 10], [13, 14, 15, 16], [19, 20, 21, 22]]


def test_center_crop_wide_keeps_the_width() -> None:
    tall = np.asarray(fit_image(_ramp(4, 8), 4, "center-crop-wide", "lanczos"))
    assert tall.tolist() == [list(range(8 + 4 * r, 12 + 4 * r)) for r in range(4)]  # rows 2..5
    wide = np.asarray(fit_image(_ramp(4, 2), 4, "center-crop-wide", "lanczos"))
    assert wide.tolist() == [[0] * 4, [0, 1, 2, 3], [4, 5, 6, 7], [0] * 4]  # black bars above and below


def test_resize_scales_to_the_resolution_with_the_named_filter() -> None:
    img = Image.fromarray(np.full((6, 10), 200, dtype=np.uint8), "L")
    for name in ("lanczos", "bicubic", "bilinear", "box"):
        out = fit_image(img, 4, "resize", name)
        assert out.size == (4, 4) and np.asarray(out).tolist() == [[200] * 4] * 4


def test_unreadable_files_are_skipped_and_named(tmp_path: Path, capsys) -> None:
    for k in range(3):
        _png(tmp_path / "src" / f"{k}.png", value=k)
    (tmp_path / "src" / "1b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "src" / "notes.txt").write_text("hello")
    code, out, err = _run(["data", "prepare", str(tmp_path / "src"), str(tmp_path / "d.zip"), "--max-images", "3"],
                          capsys)
    assert code == 0 and err == []
    assert out[-2:] == [f"wrote 3 images of 8x8x3 (no labels) to {tmp_path / 'd.zip'}; transform resize, resize "
                        "filter lanczos", "skipped 1 unreadable file (not images): 1b.png"]
    progress = [line for line in out if line.startswith("progress: ")]
    assert len(progress) == 1 and progress[0].startswith("progress: 3/3 images (100%), ")  # the final line once
    code, out, _ = _run(["data", "prepare", str(tmp_path / "src"), str(tmp_path / "e"), "--resolution", "6"], capsys)
    assert out[-2:] == ["skipped 2 unreadable files (not images): 1b.png, notes.txt",
                        "note: 6 is not a power of two; stylegan2-ada, stylegan3 and R3GAN train at power-of-two "
                        "resolutions only (pass --resolution)"]
    back = make_dataset(DataConfig(name="folder", path=str(tmp_path / "e")))
    assert back.shape == (3, 6, 6) and len(back) == 3


def test_progress_lines_for_a_log() -> None:
    lines: list[str] = []
    progress = PrepareProgress(terminal=False, echo=lines.append, every_seconds=3600.0)
    progress.started = 100.0
    assert progress.line(50, 200, 110.0) == "progress: 50/200 images (25%), 5 images/s, ETA 0:30"
    for done in range(1, 5):
        progress(done, 4)
    assert len(lines) == 1 and lines[0].startswith("progress: 4/4 images (100%)")  # only the final line in an hour


def test_cli_writes_progress_and_the_filter(tmp_path: Path, capsys) -> None:
    code, out, _ = _run(["data", "prepare", "digits", str(tmp_path / "d"), "--resolution", "16", "--filter", "box",
                         "--max-images", "10"], capsys)
    assert code == 0
    assert out[0] == f"writing digits to {tmp_path / 'd'}: transform resize, resize filter box, resolution 16"
    assert out[1].startswith("progress: 10/10 images (100%), ")


# ---------------------------------------------------------------- conditional training from dataset.json

def test_dataset_json_labels_train_a_conditional_run(tmp_path: Path, capsys) -> None:
    assert main(["data", "prepare", "digits", str(tmp_path / "digits.zip"), "--max-images", "200"]) == 0
    labels = [label for _, label in json.loads(zipfile.ZipFile(tmp_path / "digits.zip").read("dataset.json"))["labels"]]
    code = main(["train", f"out={tmp_path / 'run'}", "data.name=folder", f"data.path={tmp_path / 'digits.zip'}",
                 "model.conditional=true", "train.steps=20", "train.batch_size=16", "log.progress=false",
                 "eval.every=0", "model.width=16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    meta = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert meta["num_classes"] == max(labels) + 1 == 10
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in lines if "loss_d" in r) == 20


# ---------------------------------------------------------------- bad inputs: one line, exit 2

def _bad_files(root: Path) -> dict[str, str]:
    (root / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    _stylegan_folder(root / "jsonlist", "RAW")
    _stylegan_folder(root / "jsonbad", None)
    (root / "jsonbad" / "dataset.json").write_text("{labels: [}")
    _stylegan_folder(root / "missing", [["00000/img00000000.png", 0], ["00000/img00000001.png", 1],
                                        ["00000/img00000002.png", 1], ["00000/img00000009.png", 0]])
    _stylegan_folder(root / "unlabelled", [["00000/img00000000.png", 0], ["00000/img00000001.png", 1]])
    _stylegan_folder(root / "vector", [["00000/img00000000.png", [0.5, 0.5]]])
    _stylegan_folder(root / "negative", [["00000/img00000000.png", -1]])
    _stylegan_folder(root / "mixed", None, sizes=((8, 8), (16, 16), (8, 8)))
    with zipfile.ZipFile(root / "noimages.zip", "w") as z:
        z.writestr("dataset.json", '{"labels": null}')
    for split, cls in (("train", "a"), ("train", "b"), ("valid", "c")):
        _png(root / "studio" / split / cls / "0.png")
    _png(root / "colour" / "a.png", mode="L")
    _png(root / "colour" / "b.png", mode="RGB")
    (root / "taken").mkdir()
    return {"corrupt": str(root / "corrupt.zip"), **{k: str(root / k) for k in (
        "jsonlist", "jsonbad", "missing", "unlabelled", "vector", "negative", "mixed", "studio", "colour", "taken")},
        "noimages": str(root / "noimages.zip")}


TRAIN = ["train", "log.progress=false", "train.steps=2", "train.batch_size=2", "data.name=folder"]

BAD = [
    ("corrupt zip", TRAIN + ["data.path={corrupt}"],
     "'{corrupt}' is not a readable zip file (File is not a zip file); copy it again or re-create it with "
     "'ganstab data prepare'"),
    ("dataset.json a list", TRAIN + ["data.path={jsonlist}"],
     "'{jsonlist}/dataset.json' holds a JSON list; write {\"labels\": [[\"00000/img00000000.png\", 0], ...]} or "
     "{\"labels\": null}"),
    ("dataset.json not json", TRAIN + ["data.path={jsonbad}"],
     "'{jsonbad}/dataset.json' is not valid JSON (Expecting property name enclosed in double quotes: line 1 column "
     "2 (char 1)); write {\"labels\": [[\"00000/img00000000.png\", 0], ...]} or {\"labels\": null}"),
    ("labels name missing files", TRAIN + ["data.path={missing}"],
     "'{missing}/dataset.json' labels 1 file that are not in the dataset (e.g. '00000/img00000009.png'); remove "
     "those entries or add the images"),
    ("images without labels", TRAIN + ["data.path={unlabelled}"],
     "'{unlabelled}/dataset.json' gives no label for 1 image (e.g. '00000/img00000002.png'); label every image or "
     "write \"labels\": null"),
    ("vector labels", TRAIN + ["data.path={vector}"],
     "'{vector}/dataset.json': labels[0] gives a vector label for '00000/img00000000.png'; ganstab trains on one "
     "class index per image, so store integers 0..K-1"),
    ("negative label", TRAIN + ["data.path={negative}"],
     "'{negative}/dataset.json': labels[0] gives -1 for '00000/img00000000.png'; labels must be class indices "
     "0..K-1 (whole numbers, not negative)"),
    ("mixed resolutions", TRAIN + ["data.path={mixed}"],
     "'{mixed}': 00000/img00000001.png is 16x16 but 00000/img00000000.png is 8x8; a dataset holds one resolution: "
     "set data.image_size=N or re-create it with 'ganstab data prepare --resolution N'"),
    ("zip without images", TRAIN + ["data.path={noimages}"],
     "'{noimages}' holds no image files; pass a dataset written by 'ganstab data prepare' or stylegan2-ada's "
     "dataset_tool.py"),
    ("streamed corrupt zip", TRAIN + ["data.path={corrupt}", "data.stream=true"],
     "'{corrupt}' is not a readable zip file (File is not a zip file); copy it again or re-create it with "
     "'ganstab data prepare'"),
    ("streamed StudioGAN", TRAIN + ["data.path={studio}", "data.stream=true"],
     "data.stream=true streams a folder of images or a StyleGAN zip, not StudioGAN's train/ and valid/ ({studio}); "
     "remove data.stream"),
    ("studiogan stray class", TRAIN + ["data.path={studio}"],
     "'{studio}/valid' has images in 'c', a class folder train/ lacks; use the same class folders in both splits"),
    ("prepare into an existing DEST", ["data", "prepare", "digits", "{taken}"],
     "DEST '{taken}' already exists; choose a new path or remove it first"),
    ("prepare into a missing folder", ["data", "prepare", "digits", "{dir}/no/such/out.zip"],
     "the folder of DEST, '{dir}/no/such', does not exist; create it first"),
    ("prepare a missing SRC", ["data", "prepare", "{dir}/nothing", "{dir}/out.zip"],
     "SRC '{dir}/nothing' is neither a data.name (" + ", ".join(DATASETS) + ") nor an existing file or folder; "
     "pass one of them"),
    ("prepare mixed resolutions", ["data", "prepare", "{mixed}", "{dir}/out.zip"],
     "00000/img00000001.png is 16x16 but the first image, 00000/img00000000.png, is 8x8; pass --resolution N to "
     "resize every image to one size"),
    ("prepare colour after gray", ["data", "prepare", "{colour}", "{dir}/out.zip"],
     "b.png is a colour image but the first image, a.png, is gray; pass --channels 3 to keep colour (or --channels "
     "1 to store every image gray)"),
    ("prepare a corrupt zip", ["data", "prepare", "{corrupt}", "{dir}/out.zip"],
     "'{corrupt}' is not a readable zip file (File is not a zip file); copy it again or re-create it with "
     "'ganstab data prepare'"),
    ("prepare json of the wrong type", ["data", "prepare", "{jsonlist}", "{dir}/out.zip"],
     "'{jsonlist}/dataset.json' holds a JSON list; write {\"labels\": [[\"00000/img00000000.png\", 0], ...]} or "
     "{\"labels\": null}"),
    ("prepare points", ["data", "prepare", "ring8", "{dir}/out.zip"],
     "ring8 holds 2-D points, not images; 'ganstab data prepare' writes image datasets"),
    ("prepare crop without resolution", ["data", "prepare", "digits", "{dir}/out.zip", "--transform", "center-crop"],
     "--transform center-crop needs --resolution N (the side of the square output images)"),
    ("prepare zero resolution", ["data", "prepare", "digits", "{dir}/out.zip", "--resolution", "0"],
     "--resolution must be at least 1, got 0"),
    ("prepare zero images", ["data", "prepare", "digits", "{dir}/out.zip", "--max-images", "0"],
     "--max-images must be at least 1, got 0"),
    ("prepare test split of a folder", ["data", "prepare", "{colour}", "{dir}/out.zip", "--split", "test"],
     "--split test: a folder of images ({colour}) has no held-out split; use --split train"),
    ("prepare unknown name", ["data", "prepare", "{colour}", "{dir}/out.zip", "--name", "cifar"],
     "--name 'cifar' is not a data.name; known datasets: " + ", ".join(DATASETS)),
    ("prepare unknown transform", ["data", "prepare", "digits", "{dir}/out.zip", "--transform", "crop"],
     "argument --transform: invalid choice: 'crop' (choose from 'resize', 'center-crop', 'center-crop-wide'); see "
     "'ganstab data prepare --help'"),
    ("data without a command", ["data"], "'ganstab data' needs a command: prepare; see 'ganstab data --help'"),
]


@pytest.mark.parametrize("name,argv,expected", BAD, ids=[c[0] for c in BAD])
def test_bad_dataset_input_one_line(tmp_path: Path, capsys, name: str, argv: list[str], expected: str) -> None:
    subs = {"dir": str(tmp_path), **_bad_files(tmp_path)}

    def fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace("{" + key + "}", value)
        return text

    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    argv = [fill(a) for a in argv]
    if argv[0] == "train":
        argv.insert(1, f"out={tmp_path / 'run'}")
    code, _, err = _run(argv, capsys)
    assert (code, err) == (2, ["ganstab: error: " + fill(expected)])
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == before  # nothing written: no run folder, no DEST, no partial file


def test_bad_case_count() -> None:
    assert len(BAD) == 27


def test_parse_labels_rejects_duplicates_and_strings() -> None:
    with pytest.raises(DataError) as info:
        parse_labels(b'{"labels": [["a.png", 1], ["a.png", 2]]}', "f")
    assert str(info.value) == "f: 'a.png' is labelled twice (1 and 2); keep one entry per image"
    with pytest.raises(DataError) as info:
        parse_labels(b'{"labels": [["a.png", "cat"]]}', "f")
    assert str(info.value) == ("f: labels[0] gives \"cat\" for 'a.png'; labels must be class indices 0..K-1 (whole "
                               "numbers, not negative)")
    with pytest.raises(DataError) as info:
        parse_labels(b'{"labels": {"a.png": 1}}', "f")
    assert str(info.value) == ("f: 'labels' is a JSON object, not a list; write {\"labels\": "
                               "[[\"00000/img00000000.png\", 0], ...]} or {\"labels\": null}")
