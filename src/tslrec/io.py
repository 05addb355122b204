"""Atomic artifact writers: a crash or a bad input never leaves a half-written file behind.

Every artifact goes to a temporary sibling first and is renamed into place, which is atomic on
POSIX file systems. Tensors go to safetensors, records to JSON or Parquet; nothing is pickled.
Artifacts get the permissions any new file would (the umask's), not the temporary file's
owner-only mode.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tslrec.errors import TslrecError

if TYPE_CHECKING:
    import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: setting it to look is process-wide


def _as_if_created(path: Path, mode: int) -> None:
    """The permissions `open` or `mkdir` would have given: mkstemp and mkdtemp give owner-only
    ones. A set-group-id bit inherited from the parent directory is kept."""
    path.chmod(mode & ~_UMASK | path.stat().st_mode & stat.S_ISGID)


def require_writable_dir(path: str | Path, key: str) -> Path:
    """Fail before any work starts on an output directory that could not be written: one that
    is a file, lies under a file, or whose nearest existing ancestor cannot be written to."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise TslrecError(f"{key} '{path}': {existing} is a file, not a directory")
    try:  # a real write: permissions alone miss read-only mounts, and root passes any access()
        os.rmdir(tempfile.mkdtemp(prefix=writer_tag("write-probe"), suffix=".tmp", dir=existing))
    except OSError as err:
        raise TslrecError(
            f"{key} '{path}': {existing} is not writable ({err.strerror or err})"
        ) from None
    return path


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Name the artifact when its directory cannot be made or written (a file in the way, a
    read-only disk), instead of letting the OS error surface from deep inside a stage."""
    try:
        yield
    except OSError as err:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a directory" if blocker else err.strerror or err
        raise TslrecError(f"{path}: cannot write it ({reason})") from None


# this machine's name as it can appear in a file name: [A-Za-z0-9_] only, so it parses back
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def writer_tag(name: str, pid: int | None = None) -> str:
    """The prefix of a temporary sibling of `name`: its writer's machine and process id, so
    that a later sweep can tell an orphan (its writer is gone) from a write still under way,
    also where several machines share the file system."""
    return f".{name}.{_HOST}-{os.getpid() if pid is None else pid}-"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=writer_tag(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _as_if_created(tmp_path, 0o666)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def discard_dir(path: str | Path) -> None:
    """Delete a directory so that no crash can leave part of it under its name."""
    path = Path(path)
    trash = path.with_name(f"{writer_tag(path.name)}{uuid.uuid4().hex}.trash")
    with contextlib.suppress(FileNotFoundError):  # absent, or another process took it
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)


def restore_interrupted(path: str | Path) -> Path:
    """Put back the previous version of a directory whose replacement was cut short.

    `atomic_dir` moves the old directory aside before renaming the new one into place; a crash
    between those two renames leaves only the old one, aside, and a crash just after them a
    stale one beside the new. Readers that decide whether a directory exists (checkpoints to
    resume, models to load) call this first.
    """
    path = Path(path)
    previous = _previous(path)
    if not previous.is_dir():
        return path
    if path.exists():
        discard_dir(previous)
    else:
        with contextlib.suppress(FileNotFoundError):  # another process restored it first
            os.replace(previous, path)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` as a whole once the block succeeds.

    At every moment either the old or the new directory is complete at `path` or, for the
    instant between two renames, beside it (see `restore_interrupted`). One writer at a time.
    """
    path = restore_interrupted(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=writer_tag(path.name), suffix=".tmp", dir=path.parent))
    previous = _previous(path)
    try:
        yield tmp
        _as_if_created(tmp, 0o777)
        if path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
        discard_dir(previous)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# A temporary sibling left by `atomic_path` / `atomic_dir` / `discard_dir`: .NAME.HOST-PID-XXXX.tmp
# or .NAME.HOST-PID-HEX.trash (the leading dot doubled for hidden names such as .state.previous)
_LEFTOVER = re.compile(r"^\..+\.([A-Za-z0-9_]+)-(\d+)-[^.-]+\.(tmp|trash)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _orphaned(entry: Path) -> bool:
    if match := _LEFTOVER.match(entry.name):  # a writer on another machine is not ours to judge
        return match.group(1) == _HOST and not _alive(int(match.group(2)))
    return False


def sweep_leftovers(directory: str | Path) -> list[Path]:
    """Delete the temporary files and directories that killed writers left in `directory`.

    A kill between creating a temporary sibling and renaming it leaves a whole model
    (`.best.*.tmp/`), a JSON file or an emptied `.trash` behind that nothing else removes.
    Only those whose writer process on this machine is gone are deleted, so a write under
    way in another process, or on another machine, is never touched. Stages call this when
    they start.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    swept = []
    for entry in directory.iterdir():
        if not _orphaned(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        swept.append(entry)
    return swept


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as err:
        raise TslrecError(
            f"{path}: not UTF-8 text at byte {err.start}; it was damaged: delete it to recompute"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TslrecError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}); "
            "it was not written by tslrec or was damaged: delete it to recompute"
        ) from None


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file  # here, so JSON-only tools never import torch

    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    return load_tensors_and_metadata(path)[0]


def load_tensors_and_metadata(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file and its metadata; a damaged file is named."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()  # the handle itself is not iterable
            return {name: f.get_tensor(name) for name in names}, dict(f.metadata() or {})
    except FileNotFoundError:
        raise TslrecError(f"{path}: no such file") from None
    except (SafetensorError, OSError) as err:
        raise TslrecError(
            f"{path}: not a readable safetensors file ({err}); "
            "it was not written by tslrec or was damaged: delete it to recompute"
        ) from None


def package_file(distribution: str, relative: str) -> Path | None:
    """A file shipped inside an installed distribution (None when it is not installed).

    Found from the package metadata, never by importing the package: RecBole's imports, say,
    pull in heavy, version-pinned dependencies that a data file does not need.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(dist.locate_file(relative)))
