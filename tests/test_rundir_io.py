"""The run folder's file layer (ganstab.rundir, first half): checkpoint names and lists, the known-good copies,
rollback choice, checkpoint loading errors, atomic writes and their errors, CSV text and JSON lines.

Fast unit tests on files in tmp_path (no training): exact names, contents, messages, orders and counts.
"""

from __future__ import annotations

import errno
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
import torch

from ganstab.errors import CheckpointError
from ganstab.rundir import (
    CHECKPOINT_FORMAT,
    JsonLines,
    RunDir,
    SkippedLine,
    append_jsonl,
    atomic_write,
    atomic_write_via,
    checkpoint_name,
    checkpoint_step,
    csv_text,
    good_checkpoint_name,
    keep_as_good,
    list_checkpoints,
    list_good_checkpoints,
    load_checkpoint,
    newest_valid_before,
    newest_valid_checkpoint,
    read_json_lines,
    read_jsonl,
    sha256_file,
    skipped_note,
    user_path,
    verify_checkpoint,
)

FALLBACK = "delete it and its .sha256 file to fall back to an older checkpoint, if any"


def _write_checkpoint(folder: Path, name: str, data: bytes, sidecar: bool = True) -> Path:
    """A checkpoint-like file and (unless `sidecar` is False) its matching checksum file, as ganstab writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    if sidecar:
        (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- names -------------------------------------------------------------------------------------------------------

def test_run_dir_sample_and_checkpoint_paths(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    assert run.sample(42) == tmp_path / "samples" / "step_0000042.png"
    assert run.sample(7, "_ema") == tmp_path / "samples" / "step_0000007_ema.png"
    assert run.checkpoint(1234) == tmp_path / "checkpoints" / "ckpt_0001234.pt"
    assert run.checkpoint(12345678) == tmp_path / "checkpoints" / "ckpt_12345678.pt"


def test_checkpoint_names_and_their_steps() -> None:
    assert checkpoint_name(5) == "ckpt_0000005.pt"
    assert good_checkpoint_name(5) == "good_0000005.pt"
    assert checkpoint_step("ckpt_0000012.pt") == 12
    assert checkpoint_step("ckpt_12345678.pt") == 12345678
    assert checkpoint_step("good_0000012.pt") is None
    assert checkpoint_step("ckpt_000012.pt") is None  # six digits: not a name ganstab writes
    assert checkpoint_step("ckpt_0000012.pt.sha256") is None


def test_list_checkpoints_and_good_ones_oldest_first_ignoring_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for name in ("ckpt_0000020.pt", "good_0000010.pt", "ckpt_0000003.pt", "good_0000002.pt", "good_0000010.pt.sha256",
                 "ckpt_0000020.pt.sha256", ".ckpt_0000030.pt.tmp-99", "notes.txt", "good_12.pt"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"x")
    assert list_checkpoints(folder) == [folder / "ckpt_0000003.pt", folder / "ckpt_0000020.pt"]
    assert list_good_checkpoints(folder) == [folder / "good_0000002.pt", folder / "good_0000010.pt"]
    assert list_good_checkpoints(tmp_path / "absent") == []


# --- checksums and the choice of a checkpoint ----------------------------------------------------------------------

def test_sha256_file_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # > 1 MiB, read in more than one chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(b"")
    assert sha256_file(path) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_verify_checkpoint_names_each_problem(tmp_path: Path) -> None:
    good = _write_checkpoint(tmp_path, "ckpt_0000001.pt", b"payload")
    assert verify_checkpoint(good) is None
    missing = _write_checkpoint(tmp_path, "ckpt_0000002.pt", b"payload", sidecar=False)
    assert verify_checkpoint(missing) == "its checksum file is missing (the write did not finish)"
    empty = _write_checkpoint(tmp_path, "ckpt_0000003.pt", b"payload", sidecar=False)
    (tmp_path / "ckpt_0000003.pt.sha256").write_text("  \n")
    assert verify_checkpoint(empty) == "its checksum file is unreadable"
    wrong = _write_checkpoint(tmp_path, "ckpt_0000004.pt", b"payload")
    wrong.write_bytes(b"payloaX")
    assert verify_checkpoint(wrong) == "its checksum does not match (truncated or corrupt)"


def test_newest_valid_checkpoint_skips_invalid_newer_ones(tmp_path: Path) -> None:
    _write_checkpoint(tmp_path, "ckpt_0000001.pt", b"one")
    _write_checkpoint(tmp_path, "ckpt_0000002.pt", b"two")
    _write_checkpoint(tmp_path, "ckpt_0000003.pt", b"three", sidecar=False)
    warnings: list[str] = []
    assert newest_valid_checkpoint(tmp_path, warn=warnings.append) == tmp_path / "ckpt_0000002.pt"
    assert warnings == ["skipping checkpoint ckpt_0000003.pt: its checksum file is missing (the write did not "
                        "finish); using the previous one"]


def test_newest_valid_before_takes_the_newest_valid_one_strictly_before_the_step(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8):
        _write_checkpoint(tmp_path, checkpoint_name(step), f"rotated {step}".encode())
    _write_checkpoint(tmp_path, good_checkpoint_name(5), b"good 5")
    (tmp_path / "ckpt_0000004.pt").write_bytes(b"damaged")  # its checksum no longer matches
    warnings: list[str] = []
    assert newest_valid_before(tmp_path, 6, warn=warnings.append) == tmp_path / "good_0000005.pt"
    assert warnings == []
    assert newest_valid_before(tmp_path, 5, warn=warnings.append) == tmp_path / "ckpt_0000002.pt"
    assert warnings == ["skipping checkpoint ckpt_0000004.pt: its checksum does not match (truncated or corrupt); "
                        "using the previous one"]
    assert newest_valid_before(tmp_path, 100, warn=warnings.append) == tmp_path / "ckpt_0000008.pt"
    assert len(warnings) == 1


def test_newest_valid_before_falls_back_to_the_oldest_valid_one(tmp_path: Path) -> None:
    for step in (3, 5, 7):
        _write_checkpoint(tmp_path, checkpoint_name(step), f"rotated {step}".encode())
    _write_checkpoint(tmp_path, checkpoint_name(1), b"torn", sidecar=False)
    warnings: list[str] = []
    # nothing valid before step 3 (step 1 is torn): the oldest valid one, step 3 itself, is as far back as it goes
    assert newest_valid_before(tmp_path, 3, warn=warnings.append) == tmp_path / "ckpt_0000003.pt"
    assert warnings == ["skipping checkpoint ckpt_0000001.pt: its checksum file is missing (the write did not "
                        "finish); using the previous one"]
    assert newest_valid_before(tmp_path / "absent", 3, warn=warnings.append) is None
    for step in (3, 5, 7):
        (tmp_path / f"{checkpoint_name(step)}.sha256").unlink()
    assert newest_valid_before(tmp_path, 9, warn=warnings.append) is None
    assert len(warnings) == 5


# --- known-good copies ----------------------------------------------------------------------------------------------

def test_keep_as_good_hard_links_the_checkpoint_and_its_checksum(tmp_path: Path) -> None:
    source = _write_checkpoint(tmp_path, "ckpt_0000005.pt", b"weights")
    (tmp_path / f".good_0000005.pt.tmp-{os.getpid()}").write_bytes(b"left by a killed attempt")
    good = keep_as_good(source)
    assert good == tmp_path / "good_0000005.pt"
    assert _listing(tmp_path) == ["ckpt_0000005.pt", "ckpt_0000005.pt.sha256", "good_0000005.pt",
                                  "good_0000005.pt.sha256"]
    assert os.stat(good).st_ino == os.stat(source).st_ino
    assert os.stat(tmp_path / "good_0000005.pt.sha256").st_ino == os.stat(tmp_path / "ckpt_0000005.pt.sha256").st_ino
    assert verify_checkpoint(good) is None
    assert keep_as_good(source) == good  # again: replaced in place
    assert _listing(tmp_path) == ["ckpt_0000005.pt", "ckpt_0000005.pt.sha256", "good_0000005.pt",
                                  "good_0000005.pt.sha256"]


def test_keep_as_good_keeps_only_the_newest_and_prunes_their_checksums(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        keep_as_good(_write_checkpoint(tmp_path, checkpoint_name(step), f"w{step}".encode()))
    (tmp_path / "good_0000001.pt.sha256").unlink()  # a pruned good copy may have lost its checksum already
    keep_as_good(_write_checkpoint(tmp_path, checkpoint_name(4), b"w4"), keep=2)
    assert [p.name for p in list_good_checkpoints(tmp_path)] == ["good_0000003.pt", "good_0000004.pt"]
    assert [n for n in _listing(tmp_path) if n.startswith("good")] == [
        "good_0000003.pt", "good_0000003.pt.sha256", "good_0000004.pt", "good_0000004.pt.sha256"]
    for step in (5, 6):
        keep_as_good(_write_checkpoint(tmp_path, checkpoint_name(step), f"w{step}".encode()))
    assert [p.name for p in list_good_checkpoints(tmp_path)] == ["good_0000004.pt", "good_0000005.pt",
                                                                 "good_0000006.pt"]
    assert len([n for n in _listing(tmp_path) if n.startswith("good")]) == 6


def test_keep_as_good_refuses_a_name_that_is_no_checkpoint(tmp_path: Path) -> None:
    path = _write_checkpoint(tmp_path, "model.pt", b"x")
    with pytest.raises(ValueError) as err:
        keep_as_good(path)
    assert str(err.value) == "model.pt is not a checkpoint file name"
    assert _listing(tmp_path) == ["model.pt", "model.pt.sha256"]


# --- loading checkpoints -------------------------------------------------------------------------------------------

def _checkpoint_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt_0000001.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "w": torch.arange(3.0)}, path)
    return path


def _rezip(source: Path, target: Path, drop: str = "", replace: tuple[str, bytes] | None = None) -> Path:
    """A copy of a torch zip archive without the member ending in `drop`, or with one member's bytes replaced."""
    with zipfile.ZipFile(source) as archive_in, zipfile.ZipFile(target, "w") as archive_out:
        for name in archive_in.namelist():
            if drop and name.endswith(drop):
                continue
            data = replace[1] if replace and name.endswith(replace[0]) else archive_in.read(name)
            archive_out.writestr(name, data)
    return target


def test_load_checkpoint_reads_tensors_to_the_asked_device(tmp_path: Path) -> None:
    path = _checkpoint_bytes(tmp_path)
    data = load_checkpoint(path)
    assert data["format"] == CHECKPOINT_FORMAT
    torch.testing.assert_close(data["w"], torch.tensor([0.0, 1.0, 2.0]))
    assert load_checkpoint(str(path), map_location="meta")["w"].device.type == "meta"


def test_load_checkpoint_names_a_missing_or_foreign_file(tmp_path: Path) -> None:
    missing = tmp_path / "ckpt_0000009.pt"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(missing)
    assert str(err.value) == f"checkpoint {str(missing)!r} does not exist"
    text = tmp_path / "notes.pt"
    text.write_text("not an archive")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(text)
    assert str(err.value) == (f"checkpoint {str(text)!r} is not a PyTorch checkpoint archive (damaged, truncated or "
                              f"another kind of file); {FALLBACK}")


def test_load_checkpoint_names_damaged_pickled_data(tmp_path: Path) -> None:
    path = _rezip(_checkpoint_bytes(tmp_path), tmp_path / "ckpt_0000002.pt", replace=("data.pkl", b"\x80\x02garbage"))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"checkpoint {str(path)!r} cannot be read (its pickled data is damaged); {FALLBACK}"


def test_load_checkpoint_cuts_a_long_reading_error_at_160_characters(tmp_path: Path) -> None:
    path = _rezip(_checkpoint_bytes(tmp_path), tmp_path / "ckpt_0000002.pt", drop="data/0")
    with pytest.raises(RuntimeError) as raw:
        torch.load(path, weights_only=True)
    text = " ".join(str(raw.value).split())
    assert len(text) > 161  # torch's message is long enough for the cut to show
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"checkpoint {str(path)!r} cannot be read ({text[:157]}...); {FALLBACK}"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_rezip(path, tmp_path / "ckpt_0000003.pt", drop="data.pkl"))
    assert "cannot be read (PytorchStreamReader failed locating file data.pkl" in str(err.value)


class _Exploit:
    """Pickles into a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_checkpoint_refuses_code_even_when_the_environment_asks_torch_to_unpickle_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt_0000001.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "payload": _Exploit(marker)}, path)
    # torch honours this variable only where the caller left weights_only unset
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == (f"checkpoint {str(path)!r} needs to unpickle code, which ganstab refuses for safety; "
                              "only load checkpoints written by ganstab")
    assert not marker.exists()


# --- atomic writes -------------------------------------------------------------------------------------------------

def test_atomic_write_text_as_utf8_into_new_nested_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.txt"
    assert atomic_write(str(path), "é ✓\n") == path
    assert path.read_bytes() == b"\xc3\xa9 \xe2\x9c\x93\n"
    assert atomic_write(path, b"\x00\xff") == path
    assert path.read_bytes() == b"\x00\xff"
    assert _listing(path.parent) == ["c.txt"]


def test_atomic_write_error_names_the_users_file_not_the_temp_file(tmp_path: Path) -> None:
    path = tmp_path / ("n" * 250)  # a valid name whose temp name (".<name>.tmp-<pid>") is too long
    with pytest.raises(OSError) as err:
        atomic_write(path, "x")
    assert type(err.value) is OSError
    assert (err.value.errno, err.value.strerror, err.value.filename) == (errno.ENAMETOOLONG, "File name too long",
                                                                         str(path))
    assert str(err.value) == f"[Errno {errno.ENAMETOOLONG}] File name too long: {str(path)!r}"
    assert _listing(tmp_path) == []


def test_atomic_write_via_writes_a_file_through_a_temp_name_with_the_same_suffix(tmp_path: Path) -> None:
    seen: list[Path] = []

    def write(temp: Path) -> None:
        seen.append(temp)
        temp.write_bytes(b"png bytes")

    path = tmp_path / "plots" / "deep" / "grid.png"
    assert atomic_write_via(str(path), write) == path
    assert seen == [tmp_path / "plots" / "deep" / f".grid.tmp-{os.getpid()}.png"]
    assert path.read_bytes() == b"png bytes"
    assert atomic_write_via(path, lambda temp: temp.write_bytes(b"again")) == path  # the folder exists now
    assert path.read_bytes() == b"again"
    assert _listing(path.parent) == ["grid.png"]


def test_atomic_write_via_renames_a_whole_folder(tmp_path: Path) -> None:
    def write(temp: Path) -> None:
        temp.mkdir()
        (temp / "weights.bin").write_bytes(b"w")

    path = tmp_path / "best"
    assert atomic_write_via(path, write) == path
    assert _listing(tmp_path) == ["best"]
    assert (path / "weights.bin").read_bytes() == b"w"


def test_atomic_write_via_failure_leaves_nothing_and_raises_the_writers_error(tmp_path: Path) -> None:
    def folder_then_fail(temp: Path) -> None:
        temp.mkdir()
        (temp / "part").write_bytes(b"p")
        raise ValueError("encoder gave up")

    with pytest.raises(ValueError, match="^encoder gave up$"):
        atomic_write_via(tmp_path / "best", folder_then_fail)

    def file_then_fail(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise KeyError("no such channel")

    with pytest.raises(KeyError, match="no such channel"):
        atomic_write_via(tmp_path / "grid.png", file_then_fail)

    def fail_at_once(temp: Path) -> None:
        raise ValueError("refused before writing")

    with pytest.raises(ValueError, match="^refused before writing$"):  # no temp file to remove: no other error
        atomic_write_via(tmp_path / "grid.png", fail_at_once)
    def fail_without_errno(temp: Path) -> None:
        raise OSError("no errno")

    with pytest.raises(OSError) as err:
        atomic_write_via(tmp_path / "plain", fail_without_errno)
    assert (err.value.errno, err.value.filename, str(err.value)) == (None, None, "no errno")
    assert _listing(tmp_path) == []


def test_atomic_write_via_raises_the_writers_error_when_the_temp_folder_cannot_be_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def folder_then_fail(temp: Path) -> None:
        temp.mkdir()
        raise ValueError("encoder gave up")

    def refuse(*args, **kwargs) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "rmdir", refuse)
    with pytest.raises(ValueError, match="^encoder gave up$"):
        atomic_write_via(tmp_path / "best", folder_then_fail)
    monkeypatch.undo()
    assert _listing(tmp_path) == [f".best.tmp-{os.getpid()}"]


@pytest.mark.parametrize(("raised", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/.x.tmp-1"), (OSError, errno.ENOSPC,
                                                                          "No space left on device")),
    (OSError(errno.ENOSPC, "the disk is full (custom)"), (OSError, errno.ENOSPC, "the disk is full (custom)")),
    (OSError(errno.EIO, ""), (OSError, errno.EIO, os.strerror(errno.EIO))),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), (FileNotFoundError, errno.ENOENT,
                                                                     "No such file or directory")),
])
def test_atomic_write_via_renames_the_writers_os_error_after_the_users_file(
        tmp_path: Path, raised: OSError, expected: tuple[type, int, str]) -> None:
    def write(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise raised

    path = tmp_path / "grid.png"
    with pytest.raises(OSError) as err:
        atomic_write_via(path, write)
    kind, code, text = expected
    assert (type(err.value), err.value.errno, err.value.strerror, err.value.filename) == (kind, code, text, str(path))
    assert str(err.value) == f"[Errno {code}] {text}: {str(path)!r}"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert _listing(tmp_path) == []


def test_user_path_maps_temp_names_back_to_the_users_file() -> None:
    pid = os.getpid()
    assert user_path(f"/run/.metrics.jsonl.tmp-{pid}") == "/run/metrics.jsonl"
    assert user_path(Path(f"/run/plots/.grid.tmp-{pid}.png")) == "/run/plots/grid.png"
    assert user_path("/run/.best.tmp-12") == "/run/best"
    assert user_path("/run/plots/grid.png") == "/run/plots/grid.png"
    assert user_path(Path("/run/.hidden")) == "/run/.hidden"


def test_csv_text_uses_the_csv_module_defaults() -> None:
    assert csv_text(["arm", "fd"], [["a,b", 1.5], ['say "hi"', None], ["two\nlines", 3]]) == (
        'arm,fd\r\n"a,b",1.5\r\n"say ""hi""",\r\n"two\nlines",3\r\n')
    assert csv_text(("x",), iter([])) == "x\r\n"


# --- JSON lines ----------------------------------------------------------------------------------------------------

def test_append_jsonl_appends_complete_ascii_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 0}\n')
    append_jsonl(path, [{"step": 1, "b": 2.5, "a": "é"}, {"z": None}])
    append_jsonl(str(path), iter([{"step": 2, "b": 1, "a": [1, 2]}]), sort_keys=True)
    append_jsonl(path, [])
    assert path.read_bytes() == (b'{"step": 0}\n{"step": 1, "b": 2.5, "a": "\\u00e9"}\n{"z": null}\n'
                                 b'{"a": [1, 2], "b": 1, "step": 2}\n')


def _refuse_negative(record: dict) -> str | None:
    return "a negative step" if record.get("step", 0) < 0 else None


_MIXED = (b'{"step": 1, "loss": 0.5}\n'
          b'\n'
          b'  {"step": 2}  \r\n'
          b'\xff\xfe{"step": 3}\n'
          b'{"step": 4,\n'
          b'[1, 2]\n'
          b'"text"\n'
          b'{"step": -1}\n'
          b'   \n'
          b'{"step": 5, "note": "a b"}\n'
          b'{"step": 6\n'
          b'\n')


def test_read_json_lines_keeps_usable_objects_and_lists_each_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(_MIXED)
    found = read_json_lines(str(path), check=_refuse_negative)
    assert found.records == [{"step": 1, "loss": 0.5}, {"step": 2}, {"step": 5, "note": "a b"}]
    assert found.skipped == [SkippedLine(path, 4, "not UTF-8 text"), SkippedLine(path, 5, "not JSON"),
                             SkippedLine(path, 6, "a JSON list, not an object"),
                             SkippedLine(path, 7, "a JSON str, not an object"),
                             SkippedLine(path, 8, "a negative step"), SkippedLine(path, 11, "not JSON")]
    assert found.last_line == 11
    assert found.last_line_skipped
    unchecked = read_json_lines(path)
    assert unchecked.records == [{"step": 1, "loss": 0.5}, {"step": 2}, {"step": -1}, {"step": 5, "note": "a b"}]
    assert [(s.number, s.reason) for s in unchecked.skipped] == [(4, "not UTF-8 text"), (5, "not JSON"),
                                                                 (6, "a JSON list, not an object"),
                                                                 (7, "a JSON str, not an object"), (11, "not JSON")]
    assert read_jsonl(path) == unchecked.records


def test_read_json_lines_of_a_missing_empty_or_clean_file(tmp_path: Path) -> None:
    assert read_json_lines(tmp_path / "absent.jsonl") == JsonLines([], [], 0)
    assert read_jsonl(tmp_path / "absent.jsonl") == []
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n \n")
    assert read_json_lines(path) == JsonLines([], [], 0)
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    found = read_json_lines(path, check=lambda record: None)
    assert found == JsonLines([{"a": 1}, {"a": 2}], [], 2)
    assert not found.last_line_skipped


def test_skipped_note_counts_the_lines_and_quotes_the_first_three_reasons(tmp_path: Path) -> None:
    a, b = tmp_path / "metrics.jsonl", tmp_path / "findings.jsonl"
    assert skipped_note([]) == ""
    assert skipped_note([SkippedLine(a, 3, "not JSON")]) == (
        f"skipped 1 damaged line of {a} (line 3: not JSON); the rest was read")
    two = [SkippedLine(a, 3, "not JSON"), SkippedLine(b, 9, "not UTF-8 text")]
    assert skipped_note(two, after="nothing was written") == (
        f"skipped 2 damaged lines of {b}, {a} (line 3: not JSON; line 9: not UTF-8 text); nothing was written")
    three = [SkippedLine(a, n, "not JSON") for n in (1, 2, 3)]
    assert skipped_note(three) == (
        f"skipped 3 damaged lines of {a} (line 1: not JSON; line 2: not JSON; line 3: not JSON); the rest was read")
    four = three + [SkippedLine(a, 4, "a JSON int, not an object")]
    assert skipped_note(four) == (
        f"skipped 4 damaged lines of {a} (line 1: not JSON; line 2: not JSON; line 3: not JSON; ...); "
        "the rest was read")
