"""Image folders as users have them: 16-bit PNGs, palette and alpha, decompression bombs, classes in sub-folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstab.data import make_dataset
from ganstab.data.images import read_labelled_image_folder, wide_to_uint8
from ganstab.config import DataConfig
from ganstab.pipeline import load_config, make_trainer


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    images, skipped, labels, names = read_labelled_image_folder(tmp_path, None, None)
    assert images.shape == (1, 8, 8, 1) and skipped == 0 and labels is None and names is None
    expected = np.round(values.astype(np.float64) / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(images[0, :, :, 0], expected)


def test_wide_modes_scale_by_their_range() -> None:
    np.testing.assert_array_equal(wide_to_uint8(np.array([0, 257, 65535]), "I;16"), [0, 1, 255])
    np.testing.assert_array_equal(wide_to_uint8(np.array([0.0, 0.5, 1.0]), "F"), [0, 128, 255])
    np.testing.assert_array_equal(wide_to_uint8(np.array([0, 100, 255]), "I"), [0, 100, 255])


def test_palette_and_alpha_are_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128  # half transparent red over black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(np.full((4, 4, 3), 60, np.uint8)).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    images, skipped, _, _ = read_labelled_image_folder(tmp_path, None, 3)
    assert skipped == 0
    np.testing.assert_array_equal(images[0, 0, 0], [100, 0, 0])  # alpha.png first (sorted)
    np.testing.assert_array_equal(images[1, 0, 0], [60, 60, 60])


def test_decompression_bomb_is_skipped_with_the_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 = 4096 pixels > 2 x 1000: a bomb
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "bomb.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "fine.png")
    source = make_dataset(DataConfig(name="folder", path=str(tmp_path)))
    assert len(source) == 1
    assert source.notes == [f"data: skipped 1 file in {tmp_path} that are not readable images; using 1 images"]


def _class_folders(root: Path) -> Path:
    for k, name in enumerate(("boots", "coats", "shirts")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.full((8, 8), 40 * k + i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_sub_folders_are_classes(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "data")
    images, skipped, labels, names = read_labelled_image_folder(root, None, None)
    assert names == ["boots", "coats", "shirts"]
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 12))
    assert images.shape == (36, 8, 8, 1) and skipped == 0
    (root / "loose.png").write_bytes((root / "boots" / "0.png").read_bytes())
    assert read_labelled_image_folder(root, None, None)[2] is None  # a file outside the classes: no labels


def test_conditional_training_on_class_folders_records_the_names(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "data")
    cfg = load_config(overrides=["data.name=folder", f"data.path={root}", "model.conditional=true",
                                 "train.batch_size=12", "train.steps=2", "log.progress=false", "eval.final=false",
                                 f"out={tmp_path / 'run'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    assert trainer.num_classes == 3
    trainer.run()
    import json

    meta = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert meta["num_classes"] == 3 and meta["class_names"] == ["boots", "coats", "shirts"]


def test_limited_training_set_keeps_the_full_evaluator_and_reference() -> None:
    full = make_dataset(DataConfig(name="digits"))
    limited = make_dataset(DataConfig(name="digits", limit=100))
    assert len(limited) == 100 and len(full) > 1000
    train, labels, test, test_labels = limited.evaluator_data()
    reference = full.evaluator_data()
    assert train.shape == reference[0].shape and labels.shape == reference[1].shape
    assert test.shape == reference[2].shape  # the held-out split, the real reference of FD and coverage
    import torch

    for split in ("validation", "test"):
        assert torch.equal(limited.reference(split, 300), full.reference(split, 300))
