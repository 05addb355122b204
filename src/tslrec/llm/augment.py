"""Stage 2: every item as a one-item "virtual user" through the fine-tuned LLM -> an N x D table.

The prompt is the stage-1 template with a single item, so the pooled state lives in the space the
fine-tuning shaped: a summary of the preference that item alone signals. Items run in batches of
similar prompt length (little padding), without gradients, in eval mode. Progress is saved to a
partial checkpoint (`tslrec.checkpointer`) every few batches so a long run can be interrupted and
resumed; the final table is written atomically as safetensors with its row -> item-id map in the
metadata.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tslrec.checkpointer import (
    StaleCheckpoint,
    discard_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tslrec.config import AugmentConfig
from tslrec.errors import TslrecError
from tslrec.io import load_tensors_and_metadata, save_tensors, sweep_leftovers
from tslrec.keys import content_key
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.prompts import TEMPLATE_VERSION, PromptBuilder
from tslrec.llm.sft_batches import pad_batch
from tslrec.records import EmbedStats

log = logging.getLogger(__name__)

TENSOR_NAME = "embeddings"
PARTIAL = "table"  # the partial checkpoint's tensor group: the rows so far and the done-mask
SAVE_EVERY_BATCHES = 20


def partial_path(output_path: Path) -> Path:
    """The checkpoint directory of a table under way, beside the table it becomes."""
    return output_path.with_name(output_path.name + ".partial")


def stats_path(output_path: Path) -> Path:
    return output_path.with_name(output_path.stem + ".stats.json")


def fingerprint(
    model: PreferenceModel, builder: PromptBuilder, num_items: int, pooling: str
) -> str:
    """Identify what the table depends on, so a resume never mixes rows from different runs.

    The head weights change whenever fine-tuning changes anything, so hashing them (cheap)
    stands in for hashing all adapters.
    """
    head = model.head.weight.detach().float().cpu().numpy().tobytes()
    return content_key(head, [builder.describe(), num_items, pooling, model.hidden_size])


def load_item_embeddings(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    """Read a table written by ``embed_items``: ``(table (N+1, D), metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise TslrecError(f"{path}: no item-embedding table (run the augmentation step)")
    tensors, metadata = load_tensors_and_metadata(path)
    return tensors[TENSOR_NAME], metadata


def embed_items(
    model: PreferenceModel,
    builder: PromptBuilder,
    num_items: int,
    cfg: AugmentConfig,
    output_path: str | Path | None,
    *,
    save_every: int = SAVE_EVERY_BATCHES,
) -> torch.Tensor:
    """Return the (N+1, D) float32 table of enhanced item embeddings (row 0, padding, = zeros).

    Resumes from ``<output_path>.partial`` when it was written for the same model and settings,
    and returns the finished table directly if ``output_path`` already holds a matching one.
    Throughput goes to the log and to ``<stem>.stats.json``. With ``output_path=None`` the table
    is computed in memory and nothing is written.
    """
    key = fingerprint(model, builder, num_items, cfg.pooling)
    if output_path is None:  # in memory: nothing read, nothing written
        table, done = _fresh(num_items, model.hidden_size)
    else:
        output_path = Path(output_path)
        sweep_leftovers(output_path.parent)  # a partial checkpoint a killed run left half-written
        if output_path.is_file():
            table, meta = load_item_embeddings(output_path)
            if meta.get("fingerprint") == key:
                return table
        table, done = _resume(partial_path(output_path), key, num_items, model.hidden_size)
    todo = [i for i in range(1, num_items + 1) if not done[i]]
    prompts = {i: builder.build([i]) for i in todo}
    todo.sort(key=lambda i: (len(prompts[i]), i))
    batches = [todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        for b, items in enumerate(tqdm(batches, desc="embed items", unit="batch")):
            ids, mask = pad_batch([prompts[i] for i in items])
            with torch.inference_mode():
                pooled = model.encode(ids.to(device), mask.to(device), cfg.pooling)
            table[items] = pooled.float().cpu()
            done[items] = True
            if output_path is not None and (b + 1) % save_every == 0 and b + 1 < len(batches):
                _save(partial_path(output_path), table, done, key)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    rate = len(todo) / seconds if seconds > 0 else float("inf")
    log.info("embedded %d items in %.1fs (%.1f items/s)", len(todo), seconds, rate)
    if output_path is None:
        return table
    EmbedStats(
        items=num_items,
        computed=len(todo),
        resumed=num_items - len(todo),
        seconds=seconds,
        items_per_second=rate,
    ).save(stats_path(output_path))
    _save_final(output_path, table, key, builder, cfg.pooling)
    discard_checkpoint(partial_path(output_path))
    return table


def _fresh(num_items: int, dim: int) -> tuple[torch.Tensor, np.ndarray]:
    """A zero table of every item and padding, and its done-mask, all False."""
    return torch.zeros(num_items + 1, dim), np.zeros(num_items + 1, dtype=bool)


def _resume(path: Path, key: str, num_items: int, dim: int) -> tuple[torch.Tensor, np.ndarray]:
    """The partial table and its done-mask, or a fresh zero table when none matches: a table
    under way for another model or other settings is worth nothing here, so it is started over."""
    fresh = _fresh(num_items, dim)
    try:
        saved = load_checkpoint(path, key, what="partial table from another model or settings")
    except StaleCheckpoint as err:
        log.warning("%s: %s; starting over", err.path, err.what)
        return fresh
    if saved is None:
        return fresh
    done = saved.tensors[PARTIAL]["done"].numpy().astype(bool)
    done[0] = False
    log.info("resuming item embeddings: %d of %d items done", int(done.sum()), num_items)
    return saved.tensors[PARTIAL][TENSOR_NAME], done


def _save(path: Path, table: torch.Tensor, done: np.ndarray, key: str) -> None:
    tensors = {TENSOR_NAME: table, "done": torch.from_numpy(done.astype(np.uint8))}
    save_checkpoint(path, key, {"items_done": int(done[1:].sum())}, {PARTIAL: tensors})


def _save_final(
    path: Path, table: torch.Tensor, key: str, builder: PromptBuilder, pooling: str
) -> None:
    table[0] = 0.0
    metadata = {
        "fingerprint": key,
        "item_ids": json.dumps(list(range(table.shape[0]))),  # row r holds item id r; 0 = padding
        "num_items": str(table.shape[0] - 1),
        "dim": str(table.shape[1]),
        "pooling": pooling,
        "template_version": TEMPLATE_VERSION,
        "prompt": json.dumps(builder.describe()),
    }
    save_tensors(path, {TENSOR_NAME: table}, metadata=metadata)
