"""Table of bad inputs: each one line on stderr, a non-zero exit, no traceback, nothing lost."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstab.cli import main
from ganstab.presets import PRESETS

FAST = ["log.progress=false", "train.steps=2", "train.batch_size=8", "model.width=8", "log.every=1"]


def _files(root: Path) -> dict[str, str]:
    """Build the bad files the table refers to; returns name -> path."""
    (root / "idx_magic").mkdir()
    (root / "idx_magic" / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + b"\0" * 20)
    (root / "idx_trunc").mkdir()
    (root / "idx_trunc" / "train-images-idx3-ubyte").write_bytes(
        b"\0\0\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\0" * 100)
    (root / "gz_trunc").mkdir()
    packed = gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 10, 4, 4) + b"\0" * 160)
    (root / "gz_trunc" / "train-images-idx3-ubyte.gz").write_bytes(packed[: len(packed) // 2])
    (root / "idx_labels").mkdir()
    (root / "idx_labels" / "train-images-idx3-ubyte").write_bytes(
        b"\0\0\x08\x03" + struct.pack(">3I", 3, 8, 8) + b"\0" * 192)
    (root / "idx_labels" / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 2) + b"\0\1")
    (root / "empty").mkdir()
    (root / "textonly").mkdir()
    (root / "textonly" / "a.txt").write_text("hi")
    np.savez(root / "points3.npz", x=np.full((4, 2), np.nan, dtype=np.float32))
    np.savez(root / "floatimg.npz", x=np.full((4, 8, 8), 3.0, dtype=np.float32))
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "bad.yaml").write_text("loss:\n  kind: [hinge\n")
    (root / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    (root / "section.yaml").write_text("loss: hinge\n")
    (root / "dup.yaml").write_text("train:\n  steps: 2\nloss:\n  kind: hinge\ntrain:\n  steps: 3\n")
    (root / "dup_nested.yaml").write_text("loss:\n  kind: hinge\n  kind: lsgan\n")
    (root / "file_out").write_text("not a folder")
    (root / "img32").mkdir()
    for i in range(32):
        Image.fromarray(np.full((8, 8), i * 7, dtype=np.uint8)).save(root / "img32" / f"{i:02d}.png")
    images = np.zeros((6, 8, 8), dtype=np.uint8)
    np.savez(root / "y_short.npz", x=images, y=np.arange(5))
    np.savez(root / "y_2d.npz", x=images, y=np.zeros((6, 2), dtype=np.int64))
    np.savez(root / "y_negative.npz", x=images, y=np.array([0, 1, -1, 2, 0, 1]))
    np.savez(root / "y_float.npz", x=images, y=np.array([0.5, 1, 0, 1, 0, 1]))
    (root / "confdir").mkdir()
    (root / "folder.npy").mkdir()
    (root / "cfgonly").mkdir()
    (root / "cfgonly" / "config.yaml").write_text("seed: 0\n")
    (root / "badckpt" / "checkpoints").mkdir(parents=True)
    (root / "badckpt" / "config.yaml").write_text("seed: 0\n")
    (root / "badckpt" / "checkpoints" / "ckpt_0000010.pt").write_bytes(b"not a checkpoint")
    # beyond what the YAML parser can hold: deep nesting, an alias bomb, a self-referring alias, a huge file
    (root / "deep_flow.yaml").write_text("loss: " + "[" * 5000 + "]" * 5000 + "\n")
    (root / "deep_block.yaml").write_text("".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n")
    (root / "bomb.yaml").write_text(BOMB + "model:\n  hidden: *i\n")
    (root / "self_alias.yaml").write_text("model:\n  hidden: &a [1, *a]\n")
    with open(root / "huge.yaml", "wb") as fh:
        fh.truncate(2_000_000)  # sparse: 2 MB that take no disk
    # dtypes the trainer cannot represent (and the ones it can, as boundaries)
    img = np.zeros((8, 8, 8))
    for name, x in {"complex_img": img.astype(np.complex64), "complex_pts": np.zeros((8, 2), np.complex128),
                    "text_img": img.astype("U3"), "bytes_img": img.astype("S3"),
                    "record_img": np.zeros((8, 8, 8), dtype=[("re", "f4"), ("im", "f4")]),
                    "date_img": np.zeros((8, 8, 8), "datetime64[s]"), "span_pts": np.zeros((8, 2), "timedelta64[s]"),
                    "huge_pts": np.full((8, 2), 1e300), "int16_img": np.full((8, 8, 8), 200, np.int16)}.items():
        np.savez(root / f"{name}.npz", x=x)
    np.savez(root / "object_img.npz", x=np.array([[None]] * 8, dtype=object), allow_pickle=True)
    for name, y in {"y_complex": np.zeros(8, np.complex64), "y_text": np.array(["cat"] * 8),
                    "y_date": np.zeros(8, "datetime64[D]")}.items():
        np.savez(root / f"{name}.npz", x=np.zeros((8, 8, 8), np.uint8), y=y)
    np.savez(root / "y_object.npz", x=np.zeros((8, 8, 8), np.uint8), y=np.array([None] * 8, dtype=object),
             allow_pickle=True)
    return {p.name: str(p) for p in root.iterdir()}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file (size, modification time) and folder under root: what a refusal must leave as it was."""
    return {str(p.relative_to(root)): (0, 0) if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


# "billion laughs": 9 ** 9 values from a few lines of aliases
BOMB = "x:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 9)}]\n" for k in range(8))
LONG = "n" * 300


CASES: list[tuple[str, list[str], str]] = [
    ("unknown key", ["train", "loss.kidn=hinge"],
     "unknown config key 'loss.kidn' (did you mean 'loss.kind'?); run 'ganstab keys' to list the keys"),
    ("unknown section", ["train", "optimizer.g_lr=1"],
     "unknown config key 'optimizer' (did you mean 'optim'?); run 'ganstab keys' to list the keys"),
    ("lr not a number", ["train", "optim.g_lr=abc"],
     "config key 'optim.g_lr': Input should be a valid number, unable to parse string as a number, got 'abc'"),
    ("negative lr", ["train", "optim.g_lr=-1"], "config key 'optim.g_lr': Input should be greater than 0, got -1"),
    ("zero d lr", ["train", "optim.d_lr=0"], "config key 'optim.d_lr': Input should be greater than 0, got 0"),
    ("zero steps", ["train", "train.steps=0"], "config key 'train.steps': Input should be greater than 0, got 0"),
    ("fractional steps", ["train", "train.steps=1.5"],
     "config key 'train.steps': Input should be a valid integer, got a number with a fractional part, got 1.5"),
    ("negative batch", ["train", "train.batch_size=-3"],
     "config key 'train.batch_size': Input should be greater than 0, got -3"),
    ("zero n_critic", ["train", "train.n_critic=0"],
     "config key 'train.n_critic': Input should be greater than or equal to 1, got 0"),
    ("unknown loss", ["train", "loss.kind=wgan"],
     "config key 'loss.kind': Input should be 'minimax', 'nonsaturating', 'wasserstein', 'lsgan', 'hinge', "
     "'relativistic' or 'relativistic_average', got 'wgan'"),
    ("unknown norm", ["train", "model.g_norm=group"],
     "config key 'model.g_norm': Input should be 'batch', 'instance', 'layer', 'spectral' or 'none', got 'group'"),
    ("bn with gp", ["train", "model.d_norm=batch", "penalty.gp=10", "loss.kind=wasserstein"],
     "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1/penalty.r2): batch norm "
     "couples samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral or none"),
    ("bn with r1", ["train", "model.d_norm=batch", "penalty.r1=1"],
     "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1/penalty.r2): batch norm "
     "couples samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral or none"),
    ("smoothing with hinge", ["train", "loss.kind=hinge", "loss.real_label=0.9"],
     "label smoothing (loss.real_label/loss.fake_label) has no meaning for loss.kind=hinge; remove it or use "
     "nonsaturating/minimax/lsgan"),
    ("bn with r2", ["train", "model.d_norm=batch", "penalty.r2=1"],
     "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1/penalty.r2): batch norm "
     "couples samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral or none"),
    ("smoothing with relativistic", ["train", "loss.kind=relativistic", "loss.real_label=0.9"],
     "label smoothing (loss.real_label/loss.fake_label) has no meaning for loss.kind=relativistic; remove it or use "
     "nonsaturating/minimax/lsgan"),
    ("smoothing with wasserstein", ["train", "loss.kind=wasserstein", "loss.fake_label=0.1"],
     "label smoothing (loss.real_label/loss.fake_label) has no meaning for loss.kind=wasserstein; remove it or use "
     "nonsaturating/minimax/lsgan"),
    ("label above 1", ["train", "loss.kind=nonsaturating", "loss.real_label=1.5"],
     "config key 'loss.real_label': Input should be less than or equal to 1, got 1.5"),
    ("one beta", ["train", "optim.g_betas=[0.5]"],
     "config key 'optim.g_betas' must hold two numbers in [0, 1) like [0.5, 0.999]"),
    ("beta of 1", ["train", "optim.d_betas=[0.5, 1.0]"],
     "config key 'optim.d_betas' must hold two numbers in [0, 1), got [0.5, 1.0]"),
    ("bad device", ["train", "train.device=gpu"],
     "config key 'train.device' must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("unknown dataset", ["train", "data.name=cifar"],
     "unknown data.name 'cifar'; known datasets: ring8, grid25, digits, fashion-mnist, mnist, idx, folder, npz, "
     "stacked-fashion-mnist"),
    ("unknown arch", ["train", "model.arch=stylegan"],
     "unknown model.arch 'stylegan'; known architectures: mlp, dcgan, toy, resnet, progressive"),
    ("toy arch on images", ["train", "model.arch=toy"],
     "model.arch=toy is for 2-D points but the data are images of shape 1x8x8; use model.arch=dcgan or mlp"),
    ("dcgan on side 30", ["train", "model.arch=dcgan", "data.image_size=30"],
     "model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
     "(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got 30x30; set data.image_size=32 (or 28, 64, [48, 32]) to resize"),
    ("mbstd group", ["train", "model.arch=progressive", "model.d_norm=none", "train.batch_size=30"],
     "minibatch stddev group size 4 does not divide train.batch_size=30; choose a batch size divisible by 4 or set "
     "progressive.mbstd_group to a divisor"),
    ("override without =", ["train", "loss.kind"],
     "override 'loss.kind' is not key=value; write it like loss.kind=hinge"),
    ("negative seed", ["train", "seed=-1"], "config key 'seed': Input should be greater than or equal to 0, got -1"),
    ("negative ema", ["train", "train.ema=-5"],
     "config key 'train.ema': Input should be greater than or equal to 0, got -5"),
    ("section given a value", ["train", "--config", "{section.yaml}"],
     "config key 'loss' must be a section of key: value pairs, got 'hinge'"),
    ("missing config file", ["train", "--config", "{dir}/nope.yaml"],
     "config file '{dir}/nope.yaml' does not exist; check the path given to --config"),
    ("yaml syntax", ["train", "--config", "{bad.yaml}"],
     "config file '{bad.yaml}' is not valid YAML at line 3; fix the syntax"),
    ("yaml list", ["train", "--config", "{list.yaml}"],
     "config file '{list.yaml}' must hold a mapping of keys, got list"),
    ("yaml duplicate section", ["train", "--config", "{dup.yaml}"],
     "config file '{dup.yaml}': key 'train' appears twice (lines 1 and 5); keep one"),
    ("yaml duplicate key", ["train", "--config", "{dup_nested.yaml}"],
     "config file '{dup_nested.yaml}': key 'kind' appears twice (lines 2 and 3); keep one"),
    ("yaml binary", ["train", "--config", "{bin.yaml}"],
     "config file '{bin.yaml}' is not UTF-8 text; pass a YAML file"),
    ("fashion missing", ["train", "data.name=fashion-mnist", "data.path={dir}/nowhere"],
     "Fashion-MNIST not found at '{dir}/nowhere'; install it with 'apt-get install dataset-fashion-mnist' or pass "
     "data.path=DIR holding the IDX files"),
    ("mnist without path", ["train", "data.name=mnist"],
     "data.name=mnist needs data.path=DIR holding train-images-idx3-ubyte[.gz]"),
    ("idx wrong magic", ["train", "data.name=idx", "data.path={idx_magic}"],
     "'{idx_magic}/train-images-idx3-ubyte' is not an IDX file (wrong magic number); pass MNIST-style IDX files"),
    ("idx truncated", ["train", "data.name=idx", "data.path={idx_trunc}"],
     "IDX file '{idx_trunc}/train-images-idx3-ubyte' is truncated: expected 7840 data bytes for shape (10, 28, 28), "
     "found 100; download it again"),
    ("gzip truncated", ["train", "data.name=idx", "data.path={gz_trunc}"],
     "IDX file '{gz_trunc}/train-images-idx3-ubyte.gz' is a truncated or corrupt gzip file; download it again"),
    ("idx label count", ["train", "data.name=idx", "data.path={idx_labels}"],
     "idx train split has 3 images but 2 labels; the IDX files do not belong together"),
    ("idx folder missing images", ["train", "data.name=idx", "data.path={empty}"],
     "no train-images-idx3-ubyte[.gz] in '{empty}'; pass data.path=DIR holding the idx IDX files"),
    ("empty image folder", ["train", "data.name=folder", "data.path={empty}"],
     "image folder '{empty}' is empty; put PNG/JPEG images in it"),
    ("folder without images", ["train", "data.name=folder", "data.path={textonly}"],
     "image folder '{textonly}' holds no readable images (1 files skipped)"),
    ("npz missing", ["train", "data.name=npz", "data.path={dir}/none.npz"],
     "data.path '{dir}/none.npz' does not exist; pass an .npz file"),
    ("npz nan points", ["train", "data.name=npz", "data.path={points3.npz}", "model.arch=toy"],
     "'{points3.npz}': points must be finite numbers"),
    ("npz float range", ["train", "data.name=npz", "data.path={floatimg.npz}"],
     "'{floatimg.npz}': float images must lie in [0, 1] or [-1, 1], found [3, 3]; store uint8 or rescale"),
    ("data smaller than a batch", ["train", "data.limit=10", "train.batch_size=64"],
     "data set digits has 10 samples, fewer than one batch (train.batch_size=64); set train.batch_size to at most "
     "10 or use more data"),
    ("folder smaller than a batch", ["train", "data.name=folder", "data.path={img32}", "train.batch_size=64"],
     "data set folder has 32 samples, fewer than one batch (train.batch_size=64); set train.batch_size to at most "
     "32 or use more data"),
    ("npz labels too few", ["train", "data.name=npz", "data.path={y_short.npz}"],
     "'{y_short.npz}': labels 'y' have shape (5,) but there are 6 samples; store one integer label per sample, "
     "shape (6,)"),
    ("npz labels 2-d", ["train", "data.name=npz", "data.path={y_2d.npz}"],
     "'{y_2d.npz}': labels 'y' have shape (6, 2) but there are 6 samples; store one integer label per sample, "
     "shape (6,)"),
    ("npz negative labels", ["train", "data.name=npz", "data.path={y_negative.npz}"],
     "'{y_negative.npz}': labels 'y' must be 0 or more, found -1; number the classes 0..K-1"),
    ("output is a file", ["train", "out={file_out}"],
     "output path '{file_out}' is a file; choose another out=DIR"),
    ("unknown preset", ["train", "--preset", "biggan"],
     "unknown preset 'biggan'; known presets: " + ", ".join(PRESETS)),
    ("unknown flag", ["train", "--bogus"], "unrecognized arguments: --bogus; see 'ganstab --help'"),
    ("resume not a run", ["train", "--resume", "{empty}"],
     "--resume {empty}: not a ganstab run directory (no config.yaml)"),
    ("sample without generator", ["sample", "--run", "{empty}", "--out", "{dir}/x.png"],
     "'{empty}' has no exported generator (generator.json + generator.safetensors); train it to the end or resume "
     "it first"),
    ("sample n zero", ["sample", "--run", "{empty}", "--out", "{dir}/x.png", "--n", "0"], "--n must be positive, got 0"),
    ("sample bad device", ["sample", "--run", "{empty}", "--out", "{dir}/x.png", "--device", "bogus"],
     "--device must be cpu, cuda, cuda:N, mps or auto, got 'bogus'"),
    ("sample grid too large", ["sample", "--run", "{empty}", "--out", "{dir}/x.png", "--n", "999999999999"],
     "--n 999999999999 is more than one PNG grid shows (at most 10,000); use --format folder or npy for more "
     "samples"),
    ("eval n too large", ["eval", "--run", "{empty}", "--n", "100000000"],
     "--n must be at most 200,000 (the evaluator's limit, as for eval.n), got 100000000"),
    ("eval bad device", ["eval", "--run", "{empty}", "--device", "gpu0"],
     "--device must be cpu, cuda, cuda:N, mps or auto, got 'gpu0'"),
    ("sample bad format", ["sample", "--run", "{empty}", "--out", "x", "--format", "gif"],
     "--format must be grid, folder or npy, got 'gif'"),
    # added with augmentation, conditioning, lazy R1 and the ResNet (this round's new switches and commands)
    ("conditional without labels", ["train", "model.conditional=true", "data.name=ring8", "model.arch=toy"],
     "model.conditional=true needs labels, but data.name=ring8 has none; use labelled data (digits, fashion-mnist, "
     "mnist, npz with y, an image folder with one sub-folder per class) or set model.conditional=false"),
    ("conditional progressive", ["train", "model.conditional=true", "model.arch=progressive", "model.d_norm=none"],
     "model.conditional=true is implemented for model.arch=mlp, toy, dcgan, not progressive; choose one of them or "
     "set model.conditional=false"),
    ("conditional packed", ["train", "model.conditional=true", "model.pack=2"],
     "model.conditional=true cannot be combined with model.pack (PacGAN packs samples of different classes); set "
     "model.pack=1"),
    ("conditional streamed", ["train", "model.conditional=true", "data.name=folder", "data.path={empty}",
                              "data.stream=true"],
     "model.conditional=true needs the labels in memory; remove data.stream"),
    ("unknown d_condition", ["train", "model.d_condition=aux"],
     "config key 'model.d_condition': Input should be 'projection' or 'acgan', got 'aux'"),
    ("unknown label sampling", ["train", "model.label_sampling=uniform"],
     "config key 'model.label_sampling': Input should be 'frequency' or 'balanced', got 'uniform'"),
    ("negative acgan weight", ["train", "loss.acgan_weight=-1"],
     "config key 'loss.acgan_weight': Input should be greater than or equal to 0, got -1"),
    ("unknown augmentation", ["train", "augment.policy=color,flip"],
     "unknown augmentation 'flip' in augment.policy; known: color, translation, cutout"),
    ("ada without policy", ["train", "augment.ada_target=0.6"],
     "augment.ada_target adapts the probability of augment.policy, which is empty; set "
     "augment.policy=color,translation,cutout or remove augment.ada_target"),
    ("augmenting points", ["train", "augment.policy=color", "data.name=grid25", "model.arch=toy"],
     "augment.policy transforms images, but grid25 holds 2-D points; remove augment.policy"),
    ("augment p above 1", ["train", "augment.p=1.5"],
     "config key 'augment.p': Input should be less than or equal to 1, got 1.5"),
    ("ada interval zero", ["train", "augment.ada_interval=0"],
     "config key 'augment.ada_interval': Input should be greater than or equal to 1, got 0"),
    ("lazy r1 without r1", ["train", "penalty.r1_every=4"],
     "penalty.r1_every sets how often R1 runs, but penalty.r1 is 0; set penalty.r1 (e.g. 0.1) or remove "
     "penalty.r1_every"),
    ("lazy r2 without r2", ["train", "penalty.r2_every=4"],
     "penalty.r2_every sets how often R2 runs, but penalty.r2 is 0; set penalty.r2 (e.g. 0.1) or remove "
     "penalty.r2_every"),
    ("lecam decay without lecam", ["train", "penalty.lecam_decay=0.9"],
     "penalty.lecam_decay sets the decay of LeCam's moving averages, but penalty.lecam is 0; set penalty.lecam "
     "(e.g. 0.3) or remove penalty.lecam_decay"),
    ("lecam decay of 1", ["train", "penalty.lecam=0.3", "penalty.lecam_decay=1"],
     "config key 'penalty.lecam_decay': Input should be less than 1, got 1"),
    ("negative r2", ["train", "penalty.r2=-1"],
     "config key 'penalty.r2': Input should be greater than or equal to 0, got -1"),
    ("resnet on 8x8", ["train", "model.arch=resnet"],
     "model.arch=resnet needs image sides b*2^k with b in 3..8 and the same k >= 3 for height and width "
     "(28 is padded to 32; e.g. 32, 48, 64, 48x32), got 8x8; set data.image_size=32 (or 64, or [48, 32]) to resize"),
    ("zero progress interval", ["train", "log.progress_seconds=0"],
     "config key 'log.progress_seconds': Input should be greater than 0, got 0"),
    ("zero image size", ["train", "data.image_size=0"], "config key 'data.image_size': Input should be greater than 0, got 0"),
    ("zero latent", ["train", "model.latent_dim=0"], "config key 'model.latent_dim': Input should be greater than 0, got 0"),
    ("negative time budget", ["train", "train.time_budget=-1"],
     "config key 'train.time_budget': Input should be greater than or equal to 0, got -1"),
    ("keep no checkpoint", ["train", "log.keep_checkpoints=0"],
     "config key 'log.keep_checkpoints': Input should be greater than or equal to 1, got 0"),
    ("steps given a list", ["train", "train.steps=[1,2]"],
     "config key 'train.steps': Input should be a valid integer, got [1, 2]"),
    ("unknown optimiser", ["train", "optim.name=sgd"], "config key 'optim.name': Input should be 'adam' or 'rmsprop', got 'sgd'"),
    ("progressive start not a power of two", ["train", "progressive.start=6", "model.arch=progressive",
                                              "model.d_norm=none"],
     "progressive.start must be a power of two (4, 8, 16, ...), got 6"),
    ("pack not dividing the batch", ["train", "model.pack=3"],
     "model.pack=3 does not divide train.batch_size=8; choose a batch size divisible by 3 or another model.pack"),
    ("config is a folder", ["train", "--config", "{confdir}"],
     "config file '{confdir}' is a folder; pass a YAML file to --config"),
    ("resume without checkpoints", ["train", "--resume", "{cfgonly}"],
     "no valid checkpoint in '{cfgonly}/checkpoints' to resume from; start a new run without --resume"),
    ("resume with only a corrupt checkpoint", ["train", "--resume", "{badckpt}"],
     "no valid checkpoint in '{badckpt}/checkpoints' to resume from; start a new run without --resume"),
    ("npz fractional labels", ["train", "data.name=npz", "data.path={y_float.npz}"],
     "'{y_float.npz}': labels 'y' must be whole numbers; store integer class indices 0..K-1"),
    ("sample classes not all", ["sample", "--run", "{empty}", "--out", "{dir}/x.png", "--classes", "some"],
     "--classes takes 'all' (one row per class), got 'some'; use --class K for one class"),
    ("sample class and classes", ["sample", "--run", "{empty}", "--out", "{dir}/x.png", "--classes", "all",
                                  "--class", "2"],
     "--class K and --classes all exclude each other; give one"),
    ("eval n of one", ["eval", "--run", "{empty}", "--n", "1"], "--n must be at least 2, got 1"),
    ("doctor on a non-run", ["doctor", "{empty}"], "'{empty}' is not a ganstab run directory (no config.yaml)"),
    ("ablate zero seeds", ["ablate", "--preset", "toy", "--seeds", "0", "--out", "{dir}/abl"],
     "--seeds must be at least 1, got 0"),
    ("ablate empty value", ["ablate", "--preset", "toy", "--vary", "loss.kind=", "--out", "{dir}/abl"],
     "--vary 'loss.kind=' has an empty value; write it like --vary loss.kind=nonsaturating,hinge"),
    ("ablate zero jobs", ["ablate", "--preset", "toy", "--jobs", "0", "--out", "{dir}/abl"],
     "--jobs must be at least 1, got 0"),
    # issue #30: input beyond what the parser or a library can hold
    ("yaml nested 5000 deep", ["train", "--config", "{deep_flow.yaml}"],
     "config file '{deep_flow.yaml}' nests values more than 100 levels deep at line 1; a config is a mapping of "
     "sections of plain values, so remove the nesting"),
    ("yaml indented 300 deep", ["train", "--config", "{deep_block.yaml}"],
     "config file '{deep_block.yaml}' nests values more than 100 levels deep at line 100; a config is a mapping of "
     "sections of plain values, so remove the nesting"),
    ("yaml alias bomb", ["train", "--config", "{bomb.yaml}"],
     "config file '{bomb.yaml}' expands to more than 100,000 values at line 7; a config holds a few hundred, so "
     "remove aliases repeated inside aliases (*name) or the long lists"),
    ("yaml alias inside itself", ["train", "--config", "{self_alias.yaml}"],
     "config file '{self_alias.yaml}' holds an alias inside its own anchor (a value that contains itself) at line 2; "
     "remove the alias or write the value out"),
    ("config file of 2 MB", ["train", "--config", "{huge.yaml}"],
     "config file '{huge.yaml}' is 2.0 MB, more than the 1 MB read (a config is a few kB of YAML); pass the right "
     "file"),
    ("override nested 5000 deep", ["train", "model.hidden=" + "[" * 5000 + "]" * 5000],
     "override 'model.hidden=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...' nests values more than 100 levels "
     "deep; a config is a mapping of sections of plain values, so remove the nesting"),
    ("override alias bomb", ["train", "model.hidden={" + BOMB.replace("\n  ", ", ").replace("x:, ", "").strip() + "}"],
     "override 'model.hidden={a: &a [lol, lol, lol, lol, lol, lol, lol, l...' expands to more than 100,000 "
     "values; a config holds a few hundred, so remove aliases repeated inside aliases (*name) or the long lists"),
    ("override key 3000 deep", ["train", "a." * 3000 + "b=1"],
     "override 'a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a...' nests keys more than 100 levels "
     "deep; write a known key (run 'ganstab keys')"),
    ("override of 2 MB", ["train", "model.hidden=" + "1" * 2_000_000],
     "override 'model.hidden=11111111111111111111111111111111111111111111...' is 2,000,000 characters long, more "
     "than the 1,000,000 read; put long values in a --config file"),
    # issue #30: data of a type the trainer cannot represent, refused by name before the run folder is made
    ("npz complex images", ["train", "data.name=npz", "data.path={complex_img.npz}"],
     "'{complex_img.npz}': array 'x' holds complex numbers (dtype complex64), which ganstab cannot train on; store "
     "'x' as uint8 images or real numbers (integer, boolean or float)"),
    ("npz complex points", ["train", "data.name=npz", "data.path={complex_pts.npz}", "model.arch=toy"],
     "'{complex_pts.npz}': array 'x' holds complex numbers (dtype complex128), which ganstab cannot train on; store "
     "'x' as uint8 images or real numbers (integer, boolean or float)"),
    ("npz text", ["train", "data.name=npz", "data.path={text_img.npz}"],
     "'{text_img.npz}': array 'x' holds text (dtype <U3), which ganstab cannot train on; store 'x' as uint8 images "
     "or real numbers (integer, boolean or float)"),
    ("npz bytes", ["train", "data.name=npz", "data.path={bytes_img.npz}"],
     "'{bytes_img.npz}': array 'x' holds bytes (dtype |S3), which ganstab cannot train on; store 'x' as uint8 images "
     "or real numbers (integer, boolean or float)"),
    ("npz structured records", ["train", "data.name=npz", "data.path={record_img.npz}"],
     "'{record_img.npz}': array 'x' holds structured records or raw bytes (dtype [('re', '<f4'), ('im', '<f4')]), "
     "which ganstab cannot train on; store 'x' as uint8 images or real numbers (integer, boolean or float)"),
    ("npz dates", ["train", "data.name=npz", "data.path={date_img.npz}"],
     "'{date_img.npz}': array 'x' holds dates (dtype datetime64[s]), which ganstab cannot train on; store 'x' as "
     "uint8 images or real numbers (integer, boolean or float)"),
    ("npz time spans", ["train", "data.name=npz", "data.path={span_pts.npz}", "model.arch=toy"],
     "'{span_pts.npz}': array 'x' holds time spans (dtype timedelta64[s]), which ganstab cannot train on; store 'x' "
     "as uint8 images or real numbers (integer, boolean or float)"),
    ("npz python objects", ["train", "data.name=npz", "data.path={object_img.npz}"],
     "'{object_img.npz}': array 'x' holds Python objects (dtype object), which ganstab cannot train on; store 'x' as "
     "uint8 images or real numbers (integer, boolean or float)"),
    ("npz python object labels", ["train", "data.name=npz", "data.path={y_object.npz}"],
     "'{y_object.npz}': array 'y' holds Python objects (dtype object), which ganstab cannot train on; store 'y' as "
     "integer class indices 0..K-1"),
    ("npz points beyond float32", ["train", "data.name=npz", "data.path={huge_pts.npz}", "model.arch=toy"],
     "'{huge_pts.npz}': points reach 1e+300, beyond float32's range (about 3.4e38); rescale them"),
    ("npz int16 images out of range", ["train", "data.name=npz", "data.path={int16_img.npz}"],
     "'{int16_img.npz}': int16 images must lie in [0, 1] or [-1, 1], found [200, 200]; store uint8 or rescale"),
    ("npz complex labels", ["train", "data.name=npz", "data.path={y_complex.npz}"],
     "'{y_complex.npz}': array 'y' holds complex numbers (dtype complex64), which ganstab cannot train on; store "
     "'y' as integer class indices 0..K-1"),
    ("npz text labels", ["train", "data.name=npz", "data.path={y_text.npz}"],
     "'{y_text.npz}': array 'y' holds text (dtype <U3), which ganstab cannot train on; store 'y' as integer class "
     "indices 0..K-1"),
    ("npz date labels", ["train", "data.name=npz", "data.path={y_date.npz}"],
     "'{y_date.npz}': array 'y' holds dates (dtype datetime64[D]), which ganstab cannot train on; store 'y' as "
     "integer class indices 0..K-1"),
    # issue #30: an output that is an input, or of a kind the command cannot write (checked before any sampling)
    ("sample over the generator", ["sample", "--run", "{empty}", "--out", "{empty}/generator.safetensors"],
     "--out '{empty}/generator.safetensors' is generator.safetensors, which belongs to the run '{empty}'; write "
     "samples elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"),
    ("sample over the metrics", ["sample", "--run", "{empty}", "--out", "{empty}/../empty/metrics.jsonl"],
     "--out '{empty}/../empty/metrics.jsonl' is metrics.jsonl, which belongs to the run '{empty}'; write "
     "samples elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"),
    ("sample into the run folder", ["sample", "--run", "{empty}", "--out", "{empty}", "--format", "folder"],
     "--out '{empty}' is the run folder '{empty}' itself; write samples elsewhere, e.g. --out samples.png (grid), "
     "samples.npy or a new folder"),
    ("sample into checkpoints", ["sample", "--run", "{empty}", "--out", "{empty}/checkpoints/s.npy", "--format", "npy"],
     "--out '{empty}/checkpoints/s.npy' lies in checkpoints, which belongs to the run '{empty}'; write samples "
     "elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"),
    ("sample over another run's config", ["sample", "--run", "{empty}", "--out", "{cfgonly}/config.yaml"],
     "--out '{cfgonly}/config.yaml' is config.yaml, which belongs to the run '{cfgonly}'; write samples elsewhere, "
     "e.g. --out samples.png (grid), samples.npy or a new folder"),
    ("sample unknown extension", ["sample", "--run", "{empty}", "--out", "{dir}/x.safetensors"],
     "--out '{dir}/x.safetensors' ends in '.safetensors', which --format grid cannot write; name a .png, .jpg or "
     ".jpeg file (or use --format npy or folder)"),
    ("sample without extension", ["sample", "--run", "{empty}", "--out", "{dir}/grid"],
     "--out '{dir}/grid' has no file extension, which --format grid cannot write; name a .png, .jpg or .jpeg file "
     "(or use --format npy or folder)"),
    ("sample grid into a folder", ["sample", "--run", "{empty}", "--out", "{confdir}"],
     "--out '{confdir}' is a folder; --format grid writes one file, so give a file name like '{confdir}/samples.png'"),
    ("sample npy into a folder", ["sample", "--run", "{empty}", "--out", "{folder.npy}", "--format", "npy"],
     "--out '{folder.npy}' is a folder; --format npy writes one file, so give a file name like "
     "'{folder.npy}/samples.npy'"),
    ("sample folder over a file", ["sample", "--run", "{empty}", "--out", "{file_out}", "--format", "folder"],
     "--out '{file_out}' is a file; --format folder writes one PNG per sample into a folder, so give a new or "
     "existing folder"),
    ("sample below a file", ["sample", "--run", "{empty}", "--out", "{file_out}/x.png"],
     "--out '{file_out}/x.png' lies below '{file_out}', which is a file; choose another --out"),
    ("sample name too long", ["sample", "--run", "{empty}", "--out", "{dir}/" + LONG + ".png"],
     "--out '{dir}/" + LONG + ".png' has a name of 304 bytes, more than the 255 a file system allows; choose "
     "another --out"),
    # issue #30: operating-system refusals of a path the user gave exit 2 like every other refused input
    ("output below a file", ["train", "out={file_out}/run"],
     "output path '{file_out}/run' lies below '{file_out}', which is a file; choose another out=DIR"),
    ("output name too long", ["train", "out={dir}/" + LONG],
     "output path '{dir}/" + LONG + "' has a name of 300 bytes, more than the 255 a file system allows; "
     "choose another out=DIR"),
    ("output path too long", ["train", "out=/" + "/".join(["p" * 200] * 21)],
     "output path '/" + "p" * 39 + "...' is 4,221 bytes long, more than the 4,096 the system allows; choose another "
     "out=DIR"),
    ("evaluator cache below a file", ["train", "eval.cache_dir={file_out}/cache"],
     "eval.cache_dir '{file_out}/cache' lies below '{file_out}', which is a file; choose another eval.cache_dir or "
     "remove it"),
    ("ablate output below a file", ["ablate", "--preset", "toy", "--out", "{file_out}/abl"],
     "--out '{file_out}/abl' lies below '{file_out}', which is a file; choose another folder"),
    ("ablate output in a run's checkpoints", ["ablate", "--preset", "toy", "--out", "{cfgonly}/checkpoints"],
     "--out '{cfgonly}/checkpoints' is checkpoints, which belongs to the run '{cfgonly}'; choose a folder outside "
     "the run"),
    ("tune output below a file", ["tune", "--preset", "toy", "--trials", "1", "--out", "{file_out}/study"],
     "--out '{file_out}/study' lies below '{file_out}', which is a file; choose another folder"),
    ("tune output is a run", ["tune", "--preset", "toy", "--trials", "1", "--out", "{cfgonly}"],
     "--out '{cfgonly}' holds a single run, not a tuning study; choose another folder"),
    ("ablate output is a run", ["ablate", "--preset", "toy", "--out", "{cfgonly}"],
     "--out '{cfgonly}' holds a single run, not an ablation; choose another folder"),
    ("tune output is a file", ["tune", "--preset", "toy", "--trials", "1", "--out", "{file_out}"],
     "--out '{file_out}' is a file; choose a folder"),
    ("ablate output is a file", ["ablate", "--preset", "toy", "--out", "{file_out}"],
     "--out '{file_out}' is a file; choose a folder"),
]


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line(tmp_path: Path, capsys, name: str, argv: list[str], expected: str) -> None:
    files = _files(tmp_path)
    subs = {"dir": str(tmp_path), **files}

    def fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace("{" + key + "}", value)
        return text

    argv = [fill(a) for a in argv]
    before = _tree(tmp_path)
    if argv[0] == "train" and not any(a.startswith("out=") for a in argv) and "--resume" not in argv:
        argv.insert(1, f"out={tmp_path / 'run'}")
    if argv[0] == "train":
        argv[1:1] = FAST
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert lines == ["ganstab: error: " + fill(expected)]
    assert not (tmp_path / "run").exists()  # refused before the run folder was made (or it was removed again)
    assert _tree(tmp_path) == before  # nothing written, changed or removed


def test_case_count_issue_30() -> None:
    # the 96 rows before issue #30, its 43 hostile cases, and 6 rows of the same session's other work (R2 and LeCam
    # rules, label smoothing with a relativistic loss), and 3 rows of the shared ablate/tune output-folder check
    assert len(CASES) == 96 + 43 + 6 + 3


def test_case_count() -> None:
    assert len(CASES) >= 51 + 40  # the 51 rows of the first round plus at least 40 new ones
