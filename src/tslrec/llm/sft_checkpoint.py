"""Stage 1's checkpoints: trainable weights + optimizer state + history, as safetensors/JSON.

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

from tslrec.config import SFTConfig
from tslrec.errors import TslrecError
from tslrec.io import (
    atomic_dir,
    load_tensors,
    read_json,
    restore_interrupted,
    save_tensors,
    write_json,
)
from tslrec.keys import content_key
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.sft_samples import Sample
from tslrec.training.checkpoint import optimizer_tensors, restore_optimizer

CHECKPOINT_DIR = "checkpoint"
RNG_FILE = "rng.safetensors"  # a checkpoint within an epoch: dropout's random state


def save_checkpoint(
    output_dir: Path, model: PreferenceModel, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Write the whole checkpoint directory atomically: a crash leaves the previous one intact.

    Within an epoch (``state["partial"]``) the random state goes with it, for dropout to go on
    as it would have."""
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    with atomic_dir(output_dir / CHECKPOINT_DIR) as tmp:
        save_tensors(tmp / "trainable.safetensors", model.trainable_state_dict())
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        write_json(tmp / "optimizer.json", opt_meta)
        if "partial" in state:
            save_tensors(tmp / RNG_FILE, _rng_state())
        write_json(tmp / "state.json", state)


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def load_fine_tuned(model: PreferenceModel, output_dir: str | Path) -> dict[str, Any]:
    """Load the fine-tuned weights written by ``fine_tune`` into ``model``; return its state.

    ``model`` must be built exactly as for training (same LLM, prompt builder, K and LoRA
    settings). The returned dict holds the finished epoch count and the loss history.
    """
    directory = _checkpoint(output_dir)
    if directory is None:
        raise TslrecError(f"{output_dir}: no fine-tuned checkpoint (run the fine-tuning step)")
    model.load_trainable_state_dict(load_tensors(directory / "trainable.safetensors"))
    return read_json(directory / "state.json")


def fine_tuned_head(output_dir: str | Path) -> dict[str, torch.Tensor]:
    """The fine-tuned head's ``center``, ``weight`` and ``bias``, read from the checkpoint alone
    (no LLM needed): what stage 2's read-outs and diagnostics apply to the one-item states."""
    directory = _checkpoint(output_dir)
    if directory is None:
        raise TslrecError(f"{output_dir}: no fine-tuned checkpoint (run the fine-tuning step)")
    state = load_tensors(directory / "trainable.safetensors")
    return {"center": state["center"], "weight": state["head.weight"], "bias": state["head.bias"]}


def _checkpoint(output_dir: str | Path) -> Path | None:
    """The finished checkpoint directory under ``output_dir``, None if there is none."""
    directory = restore_interrupted(Path(output_dir) / CHECKPOINT_DIR)
    return directory if (directory / "state.json").is_file() else None


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


def try_resume(
    output_dir: Path,
    model: PreferenceModel,
    optimizer: torch.optim.Optimizer,
    cfg: SFTConfig,
    digest: str,
) -> dict[str, Any] | None:
    """Restore model + optimizer from ``output_dir`` if a compatible checkpoint is there."""
    directory = _checkpoint(output_dir)
    if directory is None:
        return None
    state = read_json(directory / "state.json")
    # a checkpoint from before every setting was recorded is compared on those it has: the
    # stage-1 directory it sits in is keyed on all of them
    settings = {k: v for k, v in resume_settings(cfg).items() if k in state["settings"]}
    if state["settings"] != settings or state["samples_digest"] != digest:
        raise TslrecError(
            f"{directory}: checkpoint from different fine-tuning settings or samples; "
            "delete it or use another output directory"
        )
    load_fine_tuned(model, output_dir)
    restore_optimizer(
        optimizer,
        load_tensors(directory / "optimizer.safetensors"),
        read_json(directory / "optimizer.json"),
    )
    return state


def fresh_state(cfg: SFTConfig, samples: int, digest: str) -> dict[str, Any]:
    """The checkpointed record of a run that has not trained yet."""
    return {
        "epoch": 0,
        "steps": 0,
        "seconds_per_epoch": [],
        "step_losses": [],
        "epoch_losses": [],
        "settings": resume_settings(cfg),
        "samples": samples,
        "samples_digest": digest,
    }
