"""Stage 1: fine-tune the preference model on user-level (or instance-level) samples.

User-level (the paper): one sample per user per epoch, so the cost is O(#users). By default
(``sft.samples = window``) each epoch draws every user one window of their training sequence,
1..``prompt.max_items`` consecutive items, and the target g counts exactly the items the prompt
shows: prompt and target agree, and one-item windows teach what stage 2 asks (an item alone).
``history`` is the first version: the last items shown, the whole history as target.
Instance-level (the baseline it is compared with): one sample per (prefix -> next item)
position, target the next item's category one-hot, O(sum of lengths).

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

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tslrec.config import SFTConfig
from tslrec.errors import TslrecError
from tslrec.io import (
    atomic_dir,
    load_tensors,
    read_json,
    restore_interrupted,
    save_tensors,
    sweep_leftovers,
    write_json,
)
from tslrec.llm.categories import preference_target
from tslrec.llm.preference_model import PreferenceModel, preference_loss
from tslrec.llm.prompts import PromptBuilder
from tslrec.training.accelerator import stage_accelerator, wait_for_everyone
from tslrec.training.checkpoint import optimizer_tensors, restore_optimizer

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATS_FILE = "sft_stats.json"
MAX_GRAD_NORM = 1.0
CHECKPOINT_SECONDS = 600.0  # within an epoch; every epoch also ends with one
RNG_FILE = "rng.safetensors"  # a checkpoint within an epoch: dropout's random state


@dataclass(frozen=True)
class Sample:
    """One training prompt: token ids, the K-dim target, and where it came from."""

    input_ids: list[int]
    target: np.ndarray  # (K,) float32
    user: int  # index into train_sequences
    length: int  # number of prefix items the target describes (before prompt truncation)


@dataclass
class SFTStats:
    """What a fine-tuning run cost and how its loss went (all epochs, including resumed ones)."""

    level: str
    samples: int
    epochs: int
    steps: int
    seconds: float
    seconds_per_epoch: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    resumed_from_epoch: int = 0
    # The loss of predicting the samples' mean target for every sample: what the epoch losses
    # must beat for the LLM to have learned anything about individual users.
    mean_target_loss: float = math.nan


# --- samples -------------------------------------------------------------------------------------


def _items(sequence: Sequence[int] | np.ndarray) -> list[int]:
    return [int(i) for i in sequence if int(i) > 0]


def user_level_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
) -> list[Sample]:
    """One sample per user with a non-empty training prefix: prompt of the prefix, target g_u.

    Only ``train_sequences`` is read, so validation/test items can reach neither prompt nor target.
    """
    labels = np.asarray(labels, dtype=np.int64)
    samples = []
    for user, sequence in enumerate(train_sequences):
        items = _items(sequence)
        if items:
            target = preference_target(items, labels, k)
            samples.append(Sample(builder.build(items), target, user, len(items)))
    return samples


def window_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
    seed: int,
) -> list[Sample]:
    """One window per user with a training item, drawn with ``seed``.

    Its length is uniform on 1..min(``prompt.max_items``, the user's length), its end uniform
    over the places it fits; the prompt shows exactly those items (fewer where
    ``prompt.max_tokens`` cuts the oldest) and the target is their category histogram, so a
    one-item window's target is its item's one-hot. Only ``train_sequences`` is read: no window
    reaches a validation or test item.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    samples = []
    for user, sequence in enumerate(train_sequences):
        items = _items(sequence)
        if not items:
            continue
        length = int(rng.integers(1, min(builder.cfg.max_items, len(items)) + 1))
        end = int(rng.integers(length, len(items) + 1))
        window = builder.shown(items[end - length : end])  # the oldest go where tokens run out
        target = preference_target(window, labels, k)
        samples.append(Sample(builder.build(window), target, user, len(window)))
    return samples


def holdout_users(
    train_sequences: Sequence[Sequence[int] | np.ndarray], share: float, seed: int
) -> tuple[list[int], list[int]]:
    """``(training users, held-out users)``: a seeded ``share`` of the users with a training
    item never trains, so the loss on them says whether the model learned to read prompts."""
    users = [u for u, s in enumerate(train_sequences) if _items(s)]
    held = round(share * len(users))
    if share > 0 and len(users) > 1:
        held = min(max(held, 1), len(users) - 1)
    order = np.random.default_rng(seed).permutation(len(users))
    out = {users[i] for i in order[:held].tolist()}
    return [u for u in users if u not in out], sorted(out)


def count_instance_samples(train_sequences: Sequence[Sequence[int] | np.ndarray]) -> int:
    """sum(len - 1): how many samples instance-level SFT would have in full."""
    return sum(max(len(_items(s)) - 1, 0) for s in train_sequences)


def instance_level_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
    max_samples: int | None = None,
    seed: int = 0,
) -> list[Sample]:
    """One sample per (prefix -> next item) position; target = one-hot category of the next item.

    ``max_samples`` draws a seeded subset of positions *before* any prompt is built, since the full
    set is O(sum of lengths) and would not fit in memory for large datasets.
    """
    labels = np.asarray(labels, dtype=np.int64)
    sequences = [_items(s) for s in train_sequences]
    per_user = np.array([max(len(s) - 1, 0) for s in sequences], dtype=np.int64)
    total = int(per_user.sum())
    chosen = np.arange(total) if max_samples is None else _subset(total, max_samples, seed)
    offsets = np.concatenate([[0], np.cumsum(per_user)])
    users = np.searchsorted(offsets, chosen, side="right") - 1
    samples = []
    for flat, user in zip(chosen.tolist(), users.tolist(), strict=True):
        t = flat - int(offsets[user]) + 1  # prefix length 1..len-1
        items = sequences[user]
        target = np.zeros(k, dtype=np.float32)
        category = labels[items[t]]
        if category < 0:
            raise TslrecError(f"item {items[t]} has no category")
        target[category] = 1.0
        samples.append(Sample(builder.build(items[:t]), target, user, t))
    return samples


def _subset(total: int, max_samples: int, seed: int) -> np.ndarray:
    """Sorted seeded subset of range(total) of size min(total, max_samples)."""
    if max_samples >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=max_samples, replace=False))


def mean_target_loss(
    samples: Sequence[Sample], loss: str, mean_of: Sequence[Sample] | None = None
) -> float:
    """The loss of a model that ignores the prompt and always predicts the mean target (of
    ``mean_of``, default ``samples`` themselves: held-out users get the training mean).

    For KL the prediction is logits whose softmax is the mean distribution.
    """
    targets = torch.from_numpy(np.stack([s.target for s in samples])).double()
    source = samples if mean_of is None else mean_of
    mean_target = torch.from_numpy(np.stack([s.target for s in source])).double().mean(dim=0)
    mean = mean_target.unsqueeze(0).expand_as(targets)
    prediction = mean if loss == "mse" else mean.clamp_min(1e-12).log()
    return float(preference_loss(prediction, targets, loss))


def subsample(samples: Sequence[Sample], max_samples: int | None, seed: int) -> list[Sample]:
    """Seeded subset (original order kept) for quick runs; all samples when the cap is None."""
    if max_samples is None:
        return list(samples)
    return [samples[i] for i in _subset(len(samples), max_samples, seed).tolist()]


# --- batching ------------------------------------------------------------------------------------


class _SampleDataset(Dataset):
    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest one: ``(input_ids, attention_mask)``.

    The pad id is irrelevant (padded positions are masked and never pooled).
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def _collate(batch: list[Sample]) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch([s.input_ids for s in batch])
    target = torch.from_numpy(np.stack([s.target for s in batch]))
    return {"input_ids": ids, "attention_mask": mask, "target": target}


def length_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar-length samples (little padding), in a seeded random order.

    Samples are shuffled, stably sorted by length (so ties vary with the seed), cut into
    consecutive batches, and the batch order is shuffled again.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


# --- checkpoints ---------------------------------------------------------------------------------


def _save_checkpoint(
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


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
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


def _resume_settings(cfg: SFTConfig) -> dict[str, Any]:
    """Every setting but the budget: a checkpoint resumes only on the same optimisation path.

    A warm-up or decay spreads over all epochs, so there the budget is part of the path."""
    constant = cfg.schedule == "constant" and cfg.warmup == 0.0
    return cfg.model_dump(exclude={"epochs"} if constant else set())


def learning_rate(cfg: SFTConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``: linear warm-up
    over ``cfg.warmup`` of them, then constant or cosine decay to zero. A function of the step
    alone, so a resumed run needs no scheduler state."""
    warmup = int(cfg.warmup * total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - warmup) / max(total_steps - warmup, 1)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


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
            batch = _collate(list(samples[start : start + batch_size]))
            with torch.inference_mode():
                _, g_hat = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                loss = model.loss(g_hat, batch["target"].to(device))
            total += float(loss) * len(batch["target"])
    finally:
        model.train(was_training)
    return total / len(samples)


def samples_digest(samples: Sequence[Sample]) -> str:
    """Hash of every prompt and target: a checkpoint only resumes on the very same samples."""
    h = hashlib.sha256()
    for s in samples:
        h.update(np.asarray(s.input_ids, dtype=np.int64).tobytes())
        h.update(np.asarray(s.target, dtype=np.float32).tobytes())
    return h.hexdigest()[:20]


def _try_resume(
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
    settings = {k: v for k, v in _resume_settings(cfg).items() if k in state["settings"]}
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


# --- training ------------------------------------------------------------------------------------


EpochSamples = Callable[[int], Sequence[Sample]]  # epoch (0-based) -> that epoch's samples


def fine_tune(
    model: PreferenceModel,
    samples: Sequence[Sample] | EpochSamples,
    cfg: SFTConfig,
    output_dir: str | Path,
) -> SFTStats:
    """Train ``model`` for ``cfg.epochs`` epochs (resuming from ``output_dir`` if possible).

    ``samples``: the same list every epoch, or a function giving each epoch its own (the
    windows of ``window_samples``, drawn anew per epoch). Returns the stats of the whole run
    (resumed epochs included), also written to ``output_dir/sft_stats.json``. Seeds the
    global RNGs (``accelerate.utils.set_seed``).
    Under several processes (``accelerate launch``/``torchrun``) each gets a share of the
    batches, the loss is averaged across them, and only the main process writes files.
    """
    output_dir = Path(output_dir)
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
    digest = samples_digest(samples)
    state = _try_resume(output_dir, model, optimizer, cfg, digest) or _fresh_state(
        cfg, len(samples), digest
    )
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
        dataset = _SampleDataset(samples)
        lengths = [len(s.input_ids) for s in samples]
        set_seed(cfg.seed + epoch)
        partial = state.pop("partial", None) or {"batches": 0, "step_losses": [], "seconds": 0.0}
        rng_state = None
        if partial["batches"]:
            log.info("resuming epoch %d after %d batches", epoch + 1, partial["batches"])
            rng_state = load_tensors(output_dir / CHECKPOINT_DIR / RNG_FILE)
        batches = length_batches(lengths, cfg.batch_size, cfg.seed + epoch)
        loader = accelerator.prepare_data_loader(
            DataLoader(dataset, batch_sampler=batches, collate_fn=_collate)
        )
        if partial["batches"]:  # each process's own share: accelerate keeps the sharding
            done_here = partial["batches"] // accelerator.num_processes
            loader = accelerator.skip_first_batches(loader, done_here)
        within = _WithinEpoch(output_dir, accelerator, model, optimizer, state, partial)
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
        if accelerator.is_main_process:
            _save_checkpoint(
                output_dir, accelerator.unwrap_model(model), optimizer.optimizer, state
            )
        wait_for_everyone()
    stats = SFTStats(
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
    if accelerator.is_main_process:
        write_json(output_dir / STATS_FILE, asdict(stats))
    return stats


@dataclass
class _WithinEpoch:
    """Checkpoints an epoch under way every ``CHECKPOINT_SECONDS``, counting from where a
    resumed epoch (``partial``) had got to."""

    output_dir: Path
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: Any  # accelerate's wrapper: the torch optimizer is its `.optimizer`
    state: dict[str, Any]
    partial: dict[str, Any]
    start: float = field(default_factory=time.perf_counter)
    saved: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.partial["seconds"] + time.perf_counter() - self.start

    def after_step(self, losses: list[float], batches_done: int) -> None:
        if not self.accelerator.is_main_process:
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
        _save_checkpoint(self.output_dir, model, self.optimizer.optimizer, state)
        self.saved = time.perf_counter()


def _fresh_state(cfg: SFTConfig, samples: int, digest: str) -> dict[str, Any]:
    """The checkpointed record of a run that has not trained yet."""
    return {
        "epoch": 0,
        "steps": 0,
        "seconds_per_epoch": [],
        "step_losses": [],
        "epoch_losses": [],
        "settings": _resume_settings(cfg),
        "samples": samples,
        "samples_digest": digest,
    }


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
            _set_rng_state(rng_state)
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
