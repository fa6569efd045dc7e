"""Datasets: toy mixtures, digits, epoch permutations, IDX files, image folders and npz files."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from ganstab.config import ConfigError, DataConfig
from ganstab.data import DATASETS, DataSource, dataset_shape, make_dataset
from ganstab.data.images import read_idx, read_idx_folder, read_image_folder, read_npz, to_unit_range
from ganstab.data.toy import GRID25_STD, RING8_STD, grid25_centers, ring8_centers
from ganstab.errors import DataError


# ---------------------------------------------------------------- toy mixtures

def test_ring8_centers():
    s = math.sqrt(0.5)
    expected = torch.tensor([[1, 0], [s, s], [0, 1], [-s, s], [-1, 0], [-s, -s], [0, -1], [s, -s]],
                            dtype=torch.float32)
    assert_close(ring8_centers(), expected)
    assert_close(ring8_centers().norm(dim=1), torch.ones(8))
    assert RING8_STD == 0.01


def test_grid25_centers():
    centers = grid25_centers()
    assert centers.shape == (25, 2)
    expected = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(c.tolist()) for c in centers} == expected
    assert GRID25_STD == 0.05


@pytest.mark.parametrize("name,std,n_modes", [("ring8", 0.01, 8), ("grid25", 0.05, 25)])
def test_toy_samples_sit_on_the_modes_with_the_right_std(name, std, n_modes):
    source = make_dataset(DataConfig(name=name), seed=0)
    assert (source.name, source.kind, source.shape, source.std) == (name, "points", (2,), std)
    assert source.centers.shape == (n_modes, 2)
    assert len(source) == 0
    points = source.batch(0, 20000)
    assert points.shape == (20000, 2) and points.dtype == torch.float32
    nearest = torch.cdist(points, source.centers).argmin(dim=1)
    residual = points - source.centers[nearest]
    # std of the residuals per axis, pooled over modes: the configured std within 3 %
    assert_close(residual.std(dim=0), torch.full((2,), std), rtol=0.03, atol=0)
    # the residual mean is zero within four standard errors std / sqrt(N)
    assert_close(residual.mean(dim=0), torch.zeros(2), atol=4 * std / math.sqrt(20000), rtol=0)
    # every mode is used, each close to 1/n_modes of the samples
    counts = torch.bincount(nearest, minlength=n_modes).float() / 20000
    assert_close(counts, torch.full((n_modes,), 1.0 / n_modes), atol=0.02, rtol=0)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_batches_are_deterministic_in_seed_and_index(name):
    a = make_dataset(DataConfig(name=name), seed=3)
    b = make_dataset(DataConfig(name=name), seed=3)
    assert torch.equal(a.batch(5, 64), b.batch(5, 64))
    assert torch.equal(a.batch(5, 64), a.batch(5, 64))
    # different index or different seed -> different batch
    assert not torch.equal(a.batch(5, 64), a.batch(6, 64))
    assert not torch.equal(a.batch(0, 64), a.batch(1, 64))
    other = make_dataset(DataConfig(name=name), seed=4)
    assert not torch.equal(a.batch(5, 64), other.batch(5, 64))
    # order of calls does not matter
    later = make_dataset(DataConfig(name=name), seed=3)
    later.batch(0, 64), later.batch(9, 64)
    assert torch.equal(later.batch(5, 64), a.batch(5, 64))


def test_references_of_toy_data_are_fixed_and_differ_by_split():
    a = make_dataset(DataConfig(name="grid25"), seed=0)
    b = make_dataset(DataConfig(name="grid25"), seed=0)
    assert torch.equal(a.reference("test", 100), b.reference("test", 100))
    assert a.reference("test", 100).shape == (100, 2)
    assert a.reference("validation", 100, val_n=40).shape == (40, 2)
    assert not torch.equal(a.reference("validation", 100), a.reference("test", 100))  # two seeds


# ---------------------------------------------------------------- digits

def test_digits():
    source = make_dataset(DataConfig(name="digits"), seed=0)
    assert (source.name, source.kind, source.shape) == ("digits", "image", (1, 8, 8))
    assert source.train.shape == (1437, 1, 8, 8)  # 80 % of 1797
    assert source.test.shape == (360, 1, 8, 8)
    assert source.train.dtype == torch.float32
    assert source.train.min().item() == -1.0 and source.train.max().item() == 1.0
    assert source.test.min().item() >= -1.0 and source.test.max().item() <= 1.0
    assert source.labels.shape == (1437,) and source.labels.dtype == torch.int64
    assert source.test_labels.shape == (360,)
    assert source.num_classes == 10
    assert set(source.labels.tolist()) == set(range(10))
    # values are k/16 mapped to [-1, 1]: (k / 16) * 2 - 1
    levels = torch.unique(source.train)
    assert_close(levels, torch.arange(17, dtype=torch.float32) / 8 - 1)
    assert dataset_shape(DataConfig(name="digits")) == (1, 8, 8)


def test_digits_limit_and_resize():
    source = make_dataset(DataConfig(name="digits", limit=100, image_size=16), seed=0)
    assert source.train.shape == (100, 1, 16, 16)
    assert source.labels.shape == (100,)
    assert source.train.min() >= -1 and source.train.max() <= 1
    assert dataset_shape(DataConfig(name="digits", image_size=16)) == (1, 16, 16)


# ---------------------------------------------------------------- epoch permutation

def counting_source(n: int, seed: int = 0) -> DataSource:
    """Held data whose sample i is the number i (so batches reveal their indices)."""
    return DataSource(name="count", kind="image", shape=(1,), train=torch.arange(n, dtype=torch.float32)[:, None],
                      seed=seed)


def test_epoch_permutation_covers_each_sample_once():
    source = counting_source(103)
    assert source.batches_per_epoch(10) == 10  # the last partial batch (3 samples) is dropped
    for epoch in range(3):
        seen = torch.cat([source.batch(epoch * 10 + i, 10) for i in range(10)]).flatten().long()
        assert seen.shape == (100,)
        assert len(set(seen.tolist())) == 100, f"epoch {epoch} repeats a sample"
        assert seen.min() >= 0 and seen.max() <= 102
    first = torch.cat([source.batch(i, 10) for i in range(10)]).flatten()
    second = torch.cat([source.batch(10 + i, 10) for i in range(10)]).flatten()
    assert not torch.equal(first, second)  # a fresh permutation every epoch


def test_epoch_permutation_is_deterministic_and_shuffled():
    a, b = counting_source(50, seed=1), counting_source(50, seed=1)
    assert torch.equal(a.batch(7, 8), b.batch(7, 8))
    assert not torch.equal(a.batch(0, 50).flatten(), torch.arange(50, dtype=torch.float32))
    # revisiting an earlier epoch after a later one gives the same batch (pure function of the index)
    early = a.batch(2, 8)
    a.batch(40, 8)
    assert torch.equal(a.batch(2, 8), early)
    assert not torch.equal(counting_source(50, seed=2).batch(0, 50), a.batch(0, 50))


def test_digits_epoch_covers_each_image_once():
    source = make_dataset(DataConfig(name="digits"), seed=0)
    marked = DataSource(name="digits", kind="image", shape=(1,),
                        train=torch.arange(len(source), dtype=torch.float32)[:, None], seed=0)
    per_epoch = marked.batches_per_epoch(64)
    assert per_epoch == 1437 // 64 == 22
    seen = torch.cat([marked.batch(i, 64) for i in range(per_epoch)]).flatten().long()
    assert len(set(seen.tolist())) == 22 * 64


def test_batch_larger_than_dataset():
    with pytest.raises(ValueError) as info:
        counting_source(5).batch(0, 8)
    assert str(info.value) == "dataset count has 5 samples, fewer than one batch of 8"


# ---------------------------------------------------------------- IDX files

def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: np.uint8, 0x0C: ">i4", 0x0D: ">f4"}[code]
    return header + np.ascontiguousarray(array.astype(dtype)).tobytes()


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10


def test_read_idx(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES))
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, IMAGES)


def test_read_idx_gzipped(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES)))
    np.testing.assert_array_equal(read_idx(path), IMAGES)


def test_read_idx_other_dtypes(tmp_path):
    labels = np.array([3, -1, 70000], dtype=np.int64)
    (tmp_path / "l").write_bytes(idx_bytes(labels, 0x0C))
    got = read_idx(tmp_path / "l")
    assert got.dtype == np.dtype(">i4")
    np.testing.assert_array_equal(got, labels)
    floats = np.array([[0.5, -2.0]], dtype=np.float32)
    (tmp_path / "f").write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f"), floats)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "weird"
    path.write_bytes(b"\x01\x02\x08\x03" + idx_bytes(IMAGES)[4:])
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(info.value) == f"{str(path)!r} is not an IDX file (wrong magic number); pass MNIST-style IDX files"
    png = tmp_path / "image.png"
    Image.new("L", (4, 4)).save(png)
    with pytest.raises(DataError) as info:
        read_idx(png)
    assert str(info.value) == f"{str(png)!r} is not an IDX file (wrong magic number); pass MNIST-style IDX files"


def test_read_idx_truncated_data(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(IMAGES)[:-4])
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(info.value) == (
        f"IDX file {str(path)!r} is truncated: expected 24 data bytes for shape (2, 3, 4), found 20; download it again"
    )


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "header"
    path.write_bytes(idx_bytes(IMAGES)[:9])
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(info.value) == f"IDX file {str(path)!r} has a truncated header; download it again"


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:-10])
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(info.value) == f"IDX file {str(path)!r} is a truncated or corrupt gzip file; download it again"


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        read_idx(tmp_path / "nope")
    assert str(info.value) == f"cannot read IDX file {str(tmp_path / 'nope')!r}: No such file or directory"


def write_idx_folder(folder, n=6, side=28, n_labels=None, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = np.arange(n_labels if n_labels is not None else n, dtype=np.uint8) % 10
    suffix = ".gz" if gz else ""
    wrap = gzip.compress if gz else (lambda b: b)
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(wrap(idx_bytes(images)))
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(wrap(idx_bytes(labels)))
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_as_fashion_mnist(tmp_path, gz):
    images, labels = write_idx_folder(tmp_path / "fm", gz=gz)
    parts = read_idx_folder(tmp_path / "fm", "fashion-mnist")
    np.testing.assert_array_equal(parts["train"], images)
    np.testing.assert_array_equal(parts["labels"], labels)
    assert parts["test"] is None and parts["test_labels"] is None
    source = make_dataset(DataConfig(name="fashion-mnist", path=str(tmp_path / "fm")))
    assert source.shape == (1, 28, 28) and len(source) == 6
    assert_close(source.train, torch.from_numpy(images.astype(np.float32))[:, None] / 255 * 2 - 1)
    assert source.train[0, 0, 0, 0].item() == -1.0 and source.train[0, 0, 0, 1].item() == 1.0
    assert torch.equal(source.labels, torch.from_numpy(labels.astype(np.int64)))


def test_idx_folder_mismatched_labels(tmp_path):
    write_idx_folder(tmp_path / "bad", n=6, n_labels=5)
    with pytest.raises(DataError) as info:
        read_idx_folder(tmp_path / "bad", "mnist")
    assert str(info.value) == (
        "mnist train split has 6 images but 5 labels; the IDX files do not belong together"
    )


def test_idx_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        read_idx_folder(tmp_path / "empty", "mnist")
    assert str(info.value) == (
        f"no train-images-idx3-ubyte[.gz] in {str(tmp_path / 'empty')!r}; "
        "pass data.path=DIR holding the mnist IDX files"
    )


@pytest.mark.parametrize("name", ["fashion-mnist", "stacked-fashion-mnist"])
def test_missing_fashion_mnist_folder(tmp_path, name):
    with pytest.raises(DataError) as info:
        make_dataset(DataConfig(name=name, path=str(tmp_path / "nowhere")))
    assert str(info.value) == (
        f"Fashion-MNIST not found at {str(tmp_path / 'nowhere')!r}; install it with "
        "'apt-get install dataset-fashion-mnist' or pass data.path=DIR holding the IDX files"
    )


def test_idx_dataset_needs_a_path():
    with pytest.raises(DataError) as info:
        make_dataset(DataConfig(name="idx"))
    assert str(info.value) == "data.name=idx needs data.path=DIR holding train-images-idx3-ubyte[.gz]"


# ---------------------------------------------------------------- image folders

def make_mixed_folder(folder):
    """Four PNGs in four modes and sizes plus a text file."""
    folder.mkdir()
    Image.new("L", (10, 10), 200).save(folder / "a_gray.png")
    Image.new("RGB", (12, 8), (10, 100, 250)).save(folder / "b_rgb.png")
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(folder / "c_rgba_transparent.png")
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 30, 60, 90] + [0] * (256 * 3 - 6))
    pal.save(folder / "d_palette.png")
    (folder / "e_notes.txt").write_text("not an image\n")


def test_image_folder_mixed_modes_and_sizes(tmp_path):
    make_mixed_folder(tmp_path / "imgs")
    arr, skipped = read_image_folder(tmp_path / "imgs", image_size=8, channels=None)
    assert skipped == 1  # the text file
    assert arr.shape == (4, 8, 8, 3) and arr.dtype == np.uint8  # some colour image -> RGB
    # uniform images stay uniform through conversion and resizing (bicubic may round by 1)
    expected = np.array([[200, 200, 200], [10, 100, 250], [0, 0, 0], [30, 60, 90]], dtype=np.float32)
    got = torch.from_numpy(arr.astype(np.float32))
    assert_close(got, torch.from_numpy(expected)[:, None, None, :].expand(4, 8, 8, 3), atol=1.0, rtol=0)


def test_image_folder_grayscale_choice(tmp_path):
    make_mixed_folder(tmp_path / "imgs")
    arr, _ = read_image_folder(tmp_path / "imgs", image_size=6, channels=1)
    assert arr.shape == (4, 6, 6, 1)
    # ITU-R 601-2 luma L = (299 R + 587 G + 114 B) / 1000
    luma = [(299 * r + 587 * g + 114 * b) / 1000 for r, g, b in ((10, 100, 250), (30, 60, 90))]
    assert_close(torch.from_numpy(arr[:, 0, 0, 0].astype(np.float32)),
                 torch.tensor([200.0, luma[0], 0.0, luma[1]]), atol=1.0, rtol=0)


def test_image_folder_all_gray_gives_one_channel(tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    for i, size in enumerate((8, 12)):
        Image.new("L", (size, size), 40 * i).save(folder / f"{i}.png")
    arr, skipped = read_image_folder(folder, image_size=None, channels=None)
    assert skipped == 0 and arr.shape == (2, 8, 8, 1)  # size of the first image


def test_image_folder_dataset(tmp_path):
    make_mixed_folder(tmp_path / "imgs")
    source = make_dataset(DataConfig(name="folder", path=str(tmp_path / "imgs"), image_size=8))
    assert source.shape == (3, 8, 8) and len(source) == 4
    assert source.train.min() >= -1 and source.train.max() <= 1
    assert_close(source.train[1, :, 0, 0], torch.tensor([10, 100, 250]) / 255 * 2 - 1, atol=2 / 255, rtol=0)
    assert source.notes == [f"data: skipped 1 file in {tmp_path / 'imgs'} that are not readable images; "
                            "using 4 images"]


def test_empty_image_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        read_image_folder(tmp_path / "empty", 8, None)
    assert str(info.value) == f"image folder {str(tmp_path / 'empty')!r} is empty; put PNG/JPEG images in it"
    with pytest.raises(DataError):
        make_dataset(DataConfig(name="folder", path=str(tmp_path / "empty")))


def test_folder_without_images(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    (folder / "b.csv").write_text("1,2")
    with pytest.raises(DataError) as info:
        read_image_folder(folder, 8, None)
    assert str(info.value) == f"image folder {str(folder)!r} holds no readable images (2 files skipped)"


def test_folder_dataset_needs_a_path():
    with pytest.raises(DataError) as info:
        make_dataset(DataConfig(name="folder"))
    assert str(info.value) == "data.name=folder needs data.path=DIR, a folder of images"


# ---------------------------------------------------------------- npz

def test_npz_points(tmp_path):
    points = np.array([[0.0, 1.0], [2.0, -3.5], [1e-3, 7.0]], dtype=np.float64)
    np.savez(tmp_path / "p.npz", x=points, y=np.array([0, 1, 1]))
    source = make_dataset(DataConfig(name="npz", path=str(tmp_path / "p.npz")))
    assert (source.kind, source.shape) == ("points", (2,))
    assert_close(source.train, torch.from_numpy(points).float())
    assert torch.equal(source.labels, torch.tensor([0, 1, 1]))
    batch = source.batch(0, 3)
    assert sorted(batch[:, 0].tolist()) == sorted(torch.from_numpy(points[:, 0]).float().tolist())


def test_npz_uint8_images(tmp_path):
    images = np.zeros((5, 8, 8), dtype=np.uint8)
    images[:, 0, 0] = 255
    images[:, 1, 1] = 51
    np.savez(tmp_path / "i.npz", images=images)
    source = make_dataset(DataConfig(name="npz", path=str(tmp_path / "i.npz")))
    assert (source.kind, source.shape, len(source)) == ("image", (1, 8, 8), 5)
    assert source.train[0, 0, 0, 0].item() == 1.0
    assert source.train[0, 0, 2, 2].item() == -1.0
    assert_close(source.train[0, 0, 1, 1], torch.tensor(51 / 255 * 2 - 1))


def test_npz_uint8_rgb_images(tmp_path):
    images = np.full((4, 16, 16, 3), 255, dtype=np.uint8)
    images[..., 1] = 0
    np.savez(tmp_path / "rgb.npz", x=images)
    source = make_dataset(DataConfig(name="npz", path=str(tmp_path / "rgb.npz")))
    assert source.shape == (3, 16, 16)
    assert_close(source.train[0, :, 3, 3], torch.tensor([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (-1.0, 1.0)])
def test_npz_float_images(tmp_path, lo, hi):
    images = np.full((2, 8, 8), lo, dtype=np.float32)
    images[:, 0, 0] = hi
    np.savez(tmp_path / "f.npz", x=images)
    source = make_dataset(DataConfig(name="npz", path=str(tmp_path / "f.npz")))
    assert source.train[0, 0, 0, 0].item() == 1.0 and source.train[0, 0, 1, 1].item() == -1.0


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "range.npz", x=np.full((2, 8, 8), 3.0, dtype=np.float32))
    with pytest.raises(DataError) as info:
        make_dataset(DataConfig(name="npz", path=str(tmp_path / "range.npz")))
    assert str(info.value) == (
        f"{str(tmp_path / 'range.npz')!r}: float images must lie in [0, 1] or [-1, 1], found [3, 3]; "
        "store uint8 or rescale"
    )
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"^cannot read .*junk\.npz' as \.npz"):
        read_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError) as info:
        read_npz(tmp_path / "missing.npz")
    assert str(info.value) == f"data.path {str(tmp_path / 'missing.npz')!r} does not exist; pass an .npz file"


# ---------------------------------------------------------------- registry and helpers

def test_to_unit_range():
    arr = np.array([[[0, 255], [51, 204]]], dtype=np.uint8)
    assert_close(to_unit_range(arr), torch.tensor([[[[-1.0, 1.0], [-0.6, 0.6]]]]))
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    assert to_unit_range(rgb).shape == (1, 3, 2, 2)


def test_unknown_dataset_name():
    cfg = DataConfig(name="digits")
    cfg.name = "cifar"
    with pytest.raises(ConfigError) as info:
        make_dataset(cfg)
    assert str(info.value) == (
        "unknown data.name 'cifar'; known datasets: " + ", ".join(DATASETS)
    )


def test_dataset_shape_without_files():
    assert dataset_shape(DataConfig(name="ring8")) == (2,)
    assert dataset_shape(DataConfig(name="fashion-mnist")) == (1, 28, 28)
    assert dataset_shape(DataConfig(name="mnist", image_size=32)) == (1, 32, 32)
    assert dataset_shape(DataConfig(name="folder")) is None
