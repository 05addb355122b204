"""A trained model as safetensors + JSON: what a later stage, the report or the API loads.

A model checkpoint is a directory with `model.safetensors` and `model.json` (what to build).
The resumable training state (weights, optimizer, progress) is `tslrec.checkpointer`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tslrec.config import ModelConfig
from tslrec.errors import TslrecError
from tslrec.io import (
    atomic_dir,
    load_tensors,
    read_json,
    restore_interrupted,
    save_tensors,
    write_json,
)
from tslrec.layout import MODEL_FILE, MODEL_META
from tslrec.models import SequentialRecommender, build_model
from tslrec.models.item_embedding import build_item_embedding


def save_model(
    model: SequentialRecommender, path: str | Path, extra: dict[str, Any] | None = None
) -> None:
    with atomic_dir(path) as tmp:
        write_model_files(model, tmp, extra)


def write_model_files(
    model: SequentialRecommender, directory: Path, extra: dict[str, Any] | None = None
) -> None:
    """`model.safetensors` and `model.json` into an existing directory (`save_model` makes one
    atomically; `extra` joins the JSON, e.g. an enhanced model's `item_embedding`)."""
    save_tensors(directory / MODEL_FILE, model.state_dict())
    meta = {"model": model.cfg.model_dump(), "num_items": model.num_items, **(extra or {})}
    write_json(directory / MODEL_META, meta)


def load_model(path: str | Path) -> tuple[SequentialRecommender, dict[str, Any]]:
    """Rebuild a backbone from its checkpoint, enhanced item embeddings included.

    An enhanced model's `model.json` records `item_embedding` ({mode, external_dim}); the frozen
    external table itself is a buffer in `model.safetensors`, so a placeholder of the right
    shape is built first and then overwritten by the saved weights.
    """
    path = restore_interrupted(path)
    if not (path / MODEL_META).is_file():  # deleted, or never finished (a kill, a full disk)
        raise TslrecError(
            f"{path}: no checkpoint here ({MODEL_META} is missing): a killed or damaged save; "
            "train (or save) it again"
        )
    meta = read_json(path / MODEL_META)
    cfg = ModelConfig(**meta["model"])
    item_embedding = None
    if "item_embedding" in meta:
        spec = meta["item_embedding"]
        placeholder = torch.zeros(meta["num_items"] + 1, spec["external_dim"])
        mode = "id" if spec["mode"] == "init" else spec["mode"]
        item_embedding = build_item_embedding(mode, placeholder, cfg.hidden_size, cfg.dropout)
    model = build_model(meta["num_items"], cfg, item_embedding)
    model.load_state_dict(load_tensors(path / MODEL_FILE))
    return model, meta
