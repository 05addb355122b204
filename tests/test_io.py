import os
import stat

import pytest
import torch

from tslrec.errors import TslrecError
from tslrec.io import (
    atomic_dir,
    atomic_path,
    load_tensors_and_metadata,
    read_json,
    restore_interrupted,
    save_tensors,
    write_json,
)


class Crash(Exception):
    pass


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(Crash), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{half")
        raise Crash
    assert read_json(tmp_path / "a.json") == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_directory_is_replaced_as_a_whole(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "old_only").write_text("1")
    with pytest.raises(Crash), atomic_dir(target) as tmp:
        (tmp / "new").write_text("2")
        raise Crash
    assert sorted(os.listdir(target)) == ["old_only"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("2")
    assert sorted(os.listdir(target)) == ["new"]
    assert os.listdir(tmp_path) == ["ckpt"]  # no temporary and no previous version left


def test_a_replacement_cut_between_its_two_renames_is_undone(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "v1").write_text("1")
    real_replace, calls = os.replace, []

    def crash_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_rename)
    with pytest.raises(Crash), atomic_dir(target) as tmp:
        (tmp / "v2").write_text("2")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not target.exists()  # the old version is only aside now
    assert sorted(os.listdir(restore_interrupted(target))) == ["v1"]
    assert os.listdir(tmp_path) == ["ckpt"]


def test_a_stale_previous_version_beside_a_complete_one_is_dropped(tmp_path):
    target = tmp_path / "ckpt"
    for name in ("ckpt", ".ckpt.previous"):  # a crash right after the second rename
        (tmp_path / name).mkdir()
        (tmp_path / name / name.strip(".")).write_text("x")
    assert os.listdir(restore_interrupted(target)) == ["ckpt"]
    assert os.listdir(tmp_path) == ["ckpt"]


def test_a_damaged_json_file_is_named_with_its_line_and_column(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(TslrecError, match=r"results.json: not valid JSON at line 4, column 1"):
        read_json(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(TslrecError, match=r"results.json: not UTF-8 text at byte 7"):
        read_json(path)


def test_artifacts_get_the_umask_permissions_not_the_temporary_owner_only_ones(tmp_path):
    """mkstemp/mkdtemp create 0600/0700; a renamed artifact must be as readable as any file."""
    umask = os.umask(0)
    os.umask(umask)
    write_json(tmp_path / "a.json", {"v": 1})
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask
    shared = tmp_path / "shared"  # a group directory: what is made in it stays set-group-id
    shared.mkdir()
    shared.chmod(0o2775)
    with atomic_dir(shared / "d") as tmp:
        (tmp / "x").write_text("1")
    assert (shared / "d").stat().st_mode & stat.S_ISGID


def test_tensors_and_metadata_round_trip_and_a_damaged_file_is_named(tmp_path):
    save_tensors(tmp_path / "t.safetensors", {"a": torch.arange(6.0).view(2, 3)}, {"k": "v"})
    tensors, metadata = load_tensors_and_metadata(tmp_path / "t.safetensors")
    assert torch.equal(tensors["a"], torch.arange(6.0).view(2, 3)) and metadata == {"k": "v"}
    with pytest.raises(TslrecError, match=r"missing.safetensors: no such file"):
        load_tensors_and_metadata(tmp_path / "missing.safetensors")
    (tmp_path / "t.safetensors").write_bytes(b"garbage")
    with pytest.raises(TslrecError, match=r"t.safetensors: not a readable safetensors file"):
        load_tensors_and_metadata(tmp_path / "t.safetensors")


def _dead_pid() -> int:
    """The id of a process that has exited (a pid is not reused this quickly)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    from tslrec.io import sweep_leftovers, writer_tag

    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f"{writer_tag('best', dead)}abc123.tmp").mkdir()
    (tmp_path / f"{writer_tag('best', dead)}abc123.tmp" / "model.safetensors").write_bytes(b"x")
    (tmp_path / f"{writer_tag('history.json', dead)}q1w2e3r4.tmp").write_text("{")
    (tmp_path / f"{writer_tag('.state.previous', dead)}{'f' * 32}.trash").mkdir()
    live = f"{writer_tag('history.json', alive)}q1w2e3r4.tmp"  # a write under way
    elsewhere = f".history.json.otherhost-{dead}-q1w2e3r4.tmp"  # another machine's
    (tmp_path / live).write_text("{")
    (tmp_path / elsewhere).write_text("{")
    untagged = tmp_path / ".best.k2j4h5g6.tmp"  # tempfile-like, but no writer of ours: a user's
    untagged.mkdir()
    os.utime(untagged, (0, 0))
    for kept in ("best", "history.json", "notes.tmp"):
        (tmp_path / kept).write_text("")
    swept = sweep_leftovers(tmp_path)
    assert len(swept) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(
        [live, elsewhere, untagged.name, "best", "history.json", "notes.tmp"]
    )


def test_temporaries_carry_the_writer_machine_and_pid(tmp_path):
    import socket

    from tslrec.io import writer_tag

    assert f"-{os.getpid()}-" in writer_tag("a.json")
    assert socket.gethostname().split(".")[0].replace("-", "_") in writer_tag("a.json")
    with atomic_path(tmp_path / "a.json") as tmp:
        assert tmp.name.startswith(writer_tag("a.json"))
    with atomic_dir(tmp_path / "d") as tmp:
        assert tmp.name.startswith(writer_tag("d"))


def test_an_unwritable_target_is_named(tmp_path):
    from tslrec.io import require_writable_dir

    (tmp_path / "file").write_text("")
    with pytest.raises(TslrecError, match=r"a\.json: cannot write it \(.*file is a file"):
        write_json(tmp_path / "file" / "a.json", {})
    with pytest.raises(TslrecError, match="is a file, not a directory"):
        require_writable_dir(tmp_path / "file" / "sub", "output_dir")
    assert require_writable_dir(tmp_path / "new" / "dir", "output_dir") == tmp_path / "new" / "dir"
