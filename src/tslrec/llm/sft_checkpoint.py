"""Stage 1's checkpoint: the trainable weights (the adapters later stages load), the optimizer
state and the history, saved by `tslrec.checkpointer`.

The whole directory is written atomically, so a crash leaves the previous checkpoint intact; a
checkpoint within an epoch keeps the random state too. A run resumes only from a checkpoint of
the same settings and the very same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tslrec import checkpointer
from tslrec.checkpointer import Checkpoint
from tslrec.config import SFTConfig
from tslrec.errors import TslrecError
from tslrec.keys import content_key
from tslrec.layout import SFT_CHECKPOINT
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.sft_samples import Sample

TRAINABLE = "trainable"  # the tensor group of the adapters, head and item rows


def save_checkpoint(
    output_dir: Path,
    model: PreferenceModel,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    key: dict[str, Any],
) -> None:
    """Write the whole checkpoint directory atomically: a crash leaves the previous one intact.

    Within an epoch (``state["partial"]``) the random state goes with it, for dropout to go on
    as it would have."""
    tensors = {TRAINABLE: model.trainable_state_dict()}
    path = Path(output_dir) / SFT_CHECKPOINT
    rng = "partial" in state
    checkpointer.save_checkpoint(path, key, state, tensors, optimizer=optimizer, rng=rng)


def _trainable(output_dir: str | Path) -> dict[str, torch.Tensor]:
    """The fine-tuned weights under ``output_dir``; a missing checkpoint is named."""
    weights = checkpointer.load_group(Path(output_dir) / SFT_CHECKPOINT, TRAINABLE)
    if weights is None:
        raise TslrecError(f"{output_dir}: no fine-tuned checkpoint (run the fine-tuning step)")
    return weights


def load_fine_tuned(model: PreferenceModel, output_dir: str | Path) -> dict[str, Any]:
    """Load the fine-tuned weights written by ``fine_tune`` into ``model``; return its state.

    ``model`` must be built exactly as for training (same LLM, prompt builder, K and LoRA
    settings). The returned dict holds the finished epoch count and the loss history.
    """
    model.load_trainable_state_dict(_trainable(output_dir))
    return checkpointer.read_progress(Path(output_dir) / SFT_CHECKPOINT) or {}


def fine_tuned_head(output_dir: str | Path) -> dict[str, torch.Tensor]:
    """The fine-tuned head's ``center``, ``weight`` and ``bias``, read from the checkpoint alone
    (no LLM needed): what stage 2's read-outs and diagnostics apply to the one-item states."""
    state = _trainable(output_dir)
    return {"center": state["center"], "weight": state["head.weight"], "bias": state["head.bias"]}


def resume_settings(cfg: SFTConfig) -> dict[str, Any]:
    """Every setting but the budget: a checkpoint resumes only on the same optimisation path.

    A warm-up or decay spreads over all epochs, so there the budget is part of the path."""
    constant = cfg.schedule == "constant" and cfg.warmup == 0.0
    return cfg.model_dump(exclude={"epochs"} if constant else set())


def samples_digest(samples: Sequence[Sample]) -> str:
    """Key of every prompt and target: a checkpoint only resumes on the very same samples."""
    return content_key(*(part for s in samples for part in _sample_bytes(s)))


def _sample_bytes(sample: Sample) -> tuple[bytes, bytes]:
    ids = np.asarray(sample.input_ids, dtype=np.int64).tobytes()
    return ids, np.asarray(sample.target, dtype=np.float32).tobytes()


def resume_key(cfg: SFTConfig, digest: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the settings and the samples."""
    return {"settings": resume_settings(cfg), "samples_digest": digest}


def try_resume(
    output_dir: Path, model: PreferenceModel, optimizer: torch.optim.Optimizer, key: dict
) -> Checkpoint | None:
    """Restore model + optimizer from ``output_dir`` if a checkpoint is there (None if not);
    one of other settings or samples is refused. Its ``progress`` is the saved state."""
    what = "checkpoint from different fine-tuning settings or samples"
    path = Path(output_dir) / SFT_CHECKPOINT
    saved = checkpointer.load_checkpoint(path, key, optimizer=optimizer, what=what)
    if saved is not None:
        model.load_trainable_state_dict(saved.tensors[TRAINABLE])
    return saved


def fresh_state(samples: int) -> dict[str, Any]:
    """The checkpointed record of a run that has not trained yet."""
    return {
        "epoch": 0,
        "steps": 0,
        "seconds_per_epoch": [],
        "step_losses": [],
        "epoch_losses": [],
        "samples": samples,
    }
