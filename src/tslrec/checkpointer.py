"""One resumable state on disk for every loop that can be interrupted, in safetensors + JSON.

The backbone trainer, the LLM fine-tuning and stage 2's table of item states all save the same
thing: named groups of tensors (model or trainable weights, a partial table), optionally an
optimizer and the random state, a JSON record of progress, and the resume key (what must be
unchanged for the state to be resumed). A checkpoint is a directory written as a whole by
`atomic_dir`, so a crash while saving leaves the previous one intact; nothing is pickled.

    <directory>/<group>.safetensors   one file per tensor group
    <directory>/optimizer.safetensors  the optimizer's tensors (its plain values in the record)
    <directory>/rng.safetensors        the random state, where it was kept
    <directory>/progress.json          {"resume_key", "groups", "progress", "optimizer"?}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tslrec.errors import TslrecError
from tslrec.io import (
    atomic_dir,
    discard_dir,
    load_tensors,
    read_json,
    restore_interrupted,
    save_tensors,
    write_json,
)
from tslrec.layout import CHECKPOINT_OPTIMIZER, CHECKPOINT_PROGRESS, CHECKPOINT_RNG

Tensors = Mapping[str, torch.Tensor]


def group_file(group: str) -> str:
    """The file a tensor group is saved to: `model` -> `model.safetensors`."""
    return f"{group}.safetensors"


class StaleCheckpoint(TslrecError):
    """A checkpoint saved under another resume key: other settings, inputs or model."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        super().__init__(f"{path}: {what}; delete it or use another output directory")


@dataclass
class Checkpoint:
    """What `load_checkpoint` read back: the progress record, every tensor group and, where
    it was kept, the random state (for the caller to set when its loop is where it was)."""

    progress: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]
    rng: dict[str, torch.Tensor] | None = None


def save_checkpoint(
    path: str | Path,
    key: Any,
    progress: Mapping[str, Any],
    tensors: Mapping[str, Tensors],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    rng: bool = False,
) -> None:
    """Replace the checkpoint at `path` as a whole: either the old one or this one is there.

    `key` (JSON) is what a later `load_checkpoint` must be given to resume it; `rng` keeps the
    random state of this moment, for a loop stopped part-way to go on drawing as it would have.
    """
    if reserved := {group_file(g) for g in tensors} & {CHECKPOINT_OPTIMIZER, CHECKPOINT_RNG}:
        raise ValueError(f"tensor groups may not be named as the files {sorted(reserved)}")
    record: dict[str, Any] = {"resume_key": key, "groups": list(tensors), "progress": progress}
    with atomic_dir(path) as tmp:
        for group, named in tensors.items():
            save_tensors(tmp / group_file(group), dict(named))
        if optimizer is not None:
            optimizer_state, record["optimizer"] = optimizer_tensors(optimizer)
            save_tensors(tmp / CHECKPOINT_OPTIMIZER, optimizer_state)
        if rng:
            save_tensors(tmp / CHECKPOINT_RNG, rng_state())
        write_json(tmp / CHECKPOINT_PROGRESS, record)


def _record(path: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint directory (put back if its replacement was cut short) and its record,
    None when there is no finished checkpoint."""
    path = restore_interrupted(path)
    progress = path / CHECKPOINT_PROGRESS
    return path, read_json(progress) if progress.is_file() else None


def read_progress(path: str | Path) -> dict[str, Any] | None:
    """The progress record of the checkpoint at `path` (None if there is none), unchecked:
    how far a run got, for deciding whether there is anything to resume."""
    record = _record(path)[1]
    return record["progress"] if record else None


def load_group(path: str | Path, group: str) -> dict[str, torch.Tensor] | None:
    """One tensor group of the checkpoint at `path`, unchecked (None if there is none): the
    finished weights a later stage reads, when there is nothing left to resume."""
    path, record = _record(path)
    return load_tensors(path / group_file(group)) if record else None


def _normalised(key: Any) -> Any:
    """The key as its JSON reads back (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(key, default=str))


def load_checkpoint(
    path: str | Path,
    key: Any,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    what: str = "a checkpoint of other settings or inputs",
) -> Checkpoint | None:
    """The checkpoint at `path` (None if there is none), its optimizer state put into
    `optimizer`; a `StaleCheckpoint` naming the path and `what` if it was saved under another
    key, for a resume never to mix two runs."""
    path, record = _record(path)
    if record is None:
        return None
    if record.get("resume_key") != _normalised(key):
        raise StaleCheckpoint(path, what)
    if optimizer is not None:
        restore_optimizer(optimizer, load_tensors(path / CHECKPOINT_OPTIMIZER), record["optimizer"])
    tensors = {group: load_tensors(path / group_file(group)) for group in record["groups"]}
    rng = load_tensors(path / CHECKPOINT_RNG) if (path / CHECKPOINT_RNG).is_file() else None
    return Checkpoint(record["progress"], tensors, rng)


def discard_checkpoint(path: str | Path) -> None:
    """Delete a checkpoint that is no longer needed (its result is saved), crash-safely."""
    discard_dir(restore_interrupted(path))


def rng_state() -> dict[str, torch.Tensor]:
    """torch's random state (CPU, and CUDA where there is one), as tensors."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    """Inverse of `rng_state`: the next random draw is the one that would have followed."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into flat tensors (safetensors) and plain values (JSON)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of `optimizer_tensors` (JSON turns tuples such as Adam's betas into lists)."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
