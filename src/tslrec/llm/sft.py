"""Stage 1: fine-tune the preference model on user-level (or instance-level) samples.

Its samples are built in ``sft_samples``, batched in ``sft_batches`` and checkpointed by
``sft_checkpoint``; this module is the loop.

The loop is written with HF ``accelerate`` so it also runs under ``accelerate launch``. Every
epoch ends with a checkpoint (trainable weights + optimizer state + history, as safetensors/JSON),
and a long epoch is checkpointed every ``CHECKPOINT_SECONDS`` as well (one epoch of ML-1M is
~20 minutes on 2 CPU cores); calling ``fine_tune`` again on the same ``output_dir`` resumes from
the last checkpoint. Epoch e draws its windows and shuffles with seed ``cfg.seed + e`` and
reseeds dropout with it, a mid-epoch checkpoint keeps the random state, and the learning rate is
a function of the step alone, so in one process a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from tslrec.checkpointer import set_rng_state
from tslrec.config import SFTConfig
from tslrec.errors import TslrecError
from tslrec.io import sweep_leftovers
from tslrec.layout import SFT_STATS
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.sft_batches import SampleDataset, collate, length_batches
from tslrec.llm.sft_checkpoint import (
    fresh_state,
    resume_key,
    samples_digest,
    save_checkpoint,
    try_resume,
)
from tslrec.llm.sft_samples import Sample, mean_target_loss, subsample
from tslrec.records import SftStats
from tslrec.training.accelerator import stage_accelerator, wait_for_everyone
from tslrec.training.schedule import learning_rate as scheduled_rate

log = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0
CHECKPOINT_SECONDS = 600.0  # within an epoch; every epoch also ends with one


EpochSamples = Callable[[int], Sequence[Sample]]  # epoch (0-based) -> that epoch's samples


def fine_tune(
    model: PreferenceModel,
    samples: Sequence[Sample] | EpochSamples,
    cfg: SFTConfig,
    output_dir: str | Path | None,
) -> SftStats:
    """Train ``model`` for ``cfg.epochs`` epochs (resuming from ``output_dir`` if possible).

    With ``output_dir=None`` nothing is written: the same training, in memory, that cannot
    resume once interrupted.

    ``samples``: the same list every epoch, or a function giving each epoch its own (the
    windows of ``window_samples``, drawn anew per epoch). Returns the stats of the whole run
    (resumed epochs included), also written to ``output_dir/sft_stats.json``. Seeds the
    global RNGs (``accelerate.utils.set_seed``).
    Under several processes (``accelerate launch``/``torchrun``) each gets a share of the
    batches, the loss is averaged across them, and only the main process writes files.
    """
    output_dir = Path(output_dir) if output_dir is not None else None
    if output_dir is not None:
        sweep_leftovers(output_dir)  # what a killed fine-tuning left half-written
    draw = samples if callable(samples) else (lambda epoch: samples)

    def epoch_samples(epoch: int) -> list[Sample]:
        return subsample(draw(epoch), cfg.max_samples, cfg.seed)

    samples = epoch_samples(0)
    if not samples:
        raise TslrecError("no fine-tuning samples (are all training sequences empty?)")
    accelerator = stage_accelerator(gradient_accumulation_steps=cfg.grad_accum)
    set_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    key = resume_key(cfg, samples_digest(samples))
    resumed = try_resume(output_dir, model, optimizer, key) if output_dir is not None else None
    state = resumed.progress if resumed else fresh_state(len(samples))
    resumed_from = int(state["epoch"])
    if resumed_from:
        log.info("resuming fine-tuning from %s after epoch %d", output_dir, resumed_from)
    if resumed_from > cfg.epochs:
        log.warning("%s already holds %d epochs (> sft.epochs)", output_dir, resumed_from)
    model, optimizer = accelerator.prepare(model, optimizer)
    batches_per_epoch = math.ceil(len(samples) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / (accelerator.num_processes * cfg.grad_accum))
    total_steps = cfg.epochs * steps_per_epoch

    def set_lr(step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, total_steps)

    for epoch in range(resumed_from, cfg.epochs):
        if epoch:
            samples = epoch_samples(epoch)
        dataset = SampleDataset(samples)
        lengths = [len(s.input_ids) for s in samples]
        set_seed(cfg.seed + epoch)
        partial = state.pop("partial", None) or {"batches": 0, "step_losses": [], "seconds": 0.0}
        rng_state = None
        if partial["batches"]:  # only the epoch a checkpoint within it resumes: its RNG kept
            log.info("resuming epoch %d after %d batches", epoch + 1, partial["batches"])
            rng_state = resumed.rng if resumed else None
        batches = length_batches(lengths, cfg.batch_size, cfg.seed + epoch)
        loader = accelerator.prepare_data_loader(
            DataLoader(dataset, batch_sampler=batches, collate_fn=collate)
        )
        if partial["batches"]:  # each process's own share: accelerate keeps the sharding
            done_here = partial["batches"] // accelerator.num_processes
            loader = accelerator.skip_first_batches(loader, done_here)
        within = _WithinEpoch(output_dir, accelerator, model, optimizer, state, key, partial)
        first_step = int(state["steps"]) + len(partial["step_losses"])
        losses = partial["step_losses"] + _train_epoch(
            accelerator,
            model,
            optimizer,
            loader,
            (epoch, cfg.epochs),
            within.after_step,
            lambda done, first=first_step: set_lr(first + done),
            rng_state,
        )
        state["seconds_per_epoch"].append(within.seconds())
        state["step_losses"].extend(losses)
        state["steps"] += len(losses)
        state["epoch_losses"].append(float(np.mean(losses)) if losses else math.nan)
        state["epoch"] = epoch + 1
        wait_for_everyone()
        if output_dir is not None and accelerator.is_main_process:
            plain = accelerator.unwrap_model(model)
            save_checkpoint(output_dir, plain, optimizer.optimizer, state, key)
        wait_for_everyone()
    stats = SftStats(
        level=cfg.level,
        samples=len(samples),
        epochs=int(state["epoch"]),
        steps=int(state["steps"]),
        seconds=float(sum(state["seconds_per_epoch"])),
        seconds_per_epoch=list(state["seconds_per_epoch"]),
        step_losses=list(state["step_losses"]),
        epoch_losses=list(state["epoch_losses"]),
        resumed_from_epoch=resumed_from,
        mean_target_loss=mean_target_loss(epoch_samples(max(int(state["epoch"]), 1) - 1), cfg.loss),
    )
    if output_dir is not None and accelerator.is_main_process:
        stats.save(output_dir / SFT_STATS)
    return stats


@dataclass
class _WithinEpoch:
    """Checkpoints an epoch under way every ``CHECKPOINT_SECONDS``, counting from where a
    resumed epoch (``partial``) had got to."""

    output_dir: Path | None  # None: fine-tuning in memory, nothing saved
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: Any  # accelerate's wrapper: the torch optimizer is its `.optimizer`
    state: dict[str, Any]
    key: dict[str, Any]  # the run's resume key, saved with every checkpoint
    partial: dict[str, Any]
    start: float = field(default_factory=time.perf_counter)
    saved: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.partial["seconds"] + time.perf_counter() - self.start

    def after_step(self, losses: list[float], batches_done: int) -> None:
        if self.output_dir is None or not self.accelerator.is_main_process:
            return  # no barrier: every process holds the same weights, the main one writes
        if time.perf_counter() - self.saved < CHECKPOINT_SECONDS:
            return
        so_far = {
            "batches": self.partial["batches"] + batches_done * self.accelerator.num_processes,
            "step_losses": self.partial["step_losses"] + losses,
            "seconds": self.seconds(),
        }
        model = self.accelerator.unwrap_model(self.model)
        state = {**self.state, "partial": so_far}
        save_checkpoint(self.output_dir, model, self.optimizer.optimizer, state, self.key)
        self.saved = time.perf_counter()


def _train_epoch(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[dict[str, torch.Tensor]],
    epoch_of: tuple[int, int],
    after_step: Callable[[list[float], int], None],
    before_step: Callable[[int], None],
    rng_state: dict[str, torch.Tensor] | None = None,
) -> list[float]:
    """One pass over ``loader``; returns the mean loss of each optimizer step.

    ``before_step(optimizer steps done this epoch)`` sets the learning rate of the next step.
    ``after_step(step losses so far, batches done)`` runs after every optimizer step: where a
    checkpoint within the epoch leaves no half-accumulated gradient behind. ``rng_state`` (an
    epoch resumed within) is set once the first batch is drawn, since starting the loader
    draws from the random state too, as it did when the epoch began the first time."""
    model.train()
    unwrapped: PreferenceModel = accelerator.unwrap_model(model)
    step_losses: list[float] = []
    window: list[float] = []
    epoch, epochs = epoch_of
    bar = tqdm(
        loader,
        desc=f"sft epoch {epoch + 1}/{epochs}",
        disable=not accelerator.is_local_main_process,
    )
    for done, batch in enumerate(bar, start=1):
        if done == 1 and rng_state is not None:
            set_rng_state(rng_state)
        before_step(len(step_losses))
        with accelerator.accumulate(model):
            _, g_hat = model(batch["input_ids"], batch["attention_mask"])
            loss = unwrapped.loss(g_hat, batch["target"])
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad()
        window.append(accelerator.gather(loss.detach()).mean().item())
        if accelerator.sync_gradients:
            step_losses.append(float(np.mean(window)))
            window = []
            bar.set_postfix(loss=f"{step_losses[-1]:.4g}")
            after_step(step_losses, done)
    model.eval()
    return step_losses


def learning_rate(cfg: SFTConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    return scheduled_rate(cfg.lr, cfg.warmup, cfg.schedule, step, total_steps)


def evaluation_loss(
    model: PreferenceModel, samples: Sequence[Sample], batch_size: int = 32
) -> float:
    """Mean loss over ``samples`` in eval mode, without gradients (the held-out loss)."""
    if not samples:
        return math.nan
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(samples), batch_size):
            batch = collate(list(samples[start : start + batch_size]))
            with torch.inference_mode():
                _, g_hat = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                loss = model.loss(g_hat, batch["target"].to(device))
            total += float(loss) * len(batch["target"])
    finally:
        model.train(was_training)
    return total / len(samples)
