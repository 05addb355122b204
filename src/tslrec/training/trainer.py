"""One training loop for every backbone, on HF accelerate, with early stopping and resume.

The same code runs on a laptop CPU and under `accelerate launch` on several GPUs or machines:
accelerate owns device placement, distributed data loading and gradient synchronisation.
Each epoch ends with a validation pass and a checkpoint, so an interrupted run resumes where it
stopped and yields the same result as an uninterrupted one under the same seed.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast, set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from tslrec.checkpointer import load_checkpoint, read_progress, save_checkpoint
from tslrec.config import RUNTIME_FIELDS, EvalConfig, TrainConfig
from tslrec.data.dataset import SequenceDataset
from tslrec.evaluation.evaluator import evaluate
from tslrec.io import load_tensors, restore_interrupted, sweep_leftovers
from tslrec.layout import BEST, HISTORY, MODEL_FILE, TRAIN_STATE
from tslrec.models import SequentialRecommender
from tslrec.records import EpochRecord, TrainingHistory
from tslrec.training.accelerator import stage_accelerator, wait_for_everyone
from tslrec.training.batches import (
    causal_windows,
    mask_items,
    masked_windows,
    trim_padding,
)
from tslrec.training.checkpoint import save_model
from tslrec.training.losses import LOSSES
from tslrec.training.schedule import learning_rate

VALID_METRIC = "NDCG@10"
MODEL = "model"  # the resumable state's tensor group of weights


@dataclass
class TrainState:
    epoch: int = 0
    best_epoch: int = 0
    best_metric: float = float("-inf")
    bad_epochs: int = 0
    seconds: float = 0.0
    seconds_to_best: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)

    def end_epoch(self, loss: float, valid: float, seconds: float) -> bool:
        """Record a finished epoch; True if it is the best so far."""
        self.epoch += 1
        self.seconds += seconds
        self.history.append(
            EpochRecord(epoch=self.epoch, loss=loss, valid_ndcg=valid, seconds=seconds)
        )
        if not valid > self.best_metric:  # a NaN never counts as an improvement
            self.bad_epochs += 1
            return False
        self.best_metric, self.best_epoch, self.bad_epochs = valid, self.epoch, 0
        self.seconds_to_best = self.seconds
        return True

    def out_of_patience(self, patience: int) -> bool:
        """Early stopping's rule: `patience` epochs in a row without a better validation."""
        return self.bad_epochs >= patience


def replay_patience(history: list[EpochRecord], patience: int) -> TrainState:
    """Where a training under `patience` would have stopped, read off the `history` of one
    under as much patience or more: every epoch is seeded (`fit`), so both train the same
    epochs up to that stop, and the rule is `fit`'s own (`TrainState.out_of_patience`)."""
    state = TrainState()
    for epoch in history:
        state.end_epoch(epoch.loss, epoch.valid_ndcg, epoch.seconds)
        if state.out_of_patience(patience):
            break
    return state


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: float
    epochs_run: int
    seconds: float
    seconds_to_best: float
    seconds_per_epoch: float
    peak_memory_mb: float
    history: list[EpochRecord]
    checkpoint: str | None  # the best checkpoint's directory; None when trained without one


def _training_tensors(model: SequentialRecommender, dataset: SequenceDataset) -> TensorDataset:
    seqs = dataset.train_sequences()
    if model.objective == "masked":
        return TensorDataset(torch.from_numpy(masked_windows(seqs, model.cfg.max_len)))
    inputs, targets = causal_windows(seqs, model.cfg.max_len)
    return TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))


def _batch_loss(model, batch: list[torch.Tensor], cfg: TrainConfig, plain: SequentialRecommender):
    """`model` is what accelerate prepared (maybe DDP-wrapped), `plain` the module inside it."""
    if plain.pads_are_inert:
        batch = trim_padding(*batch)
    if plain.objective == "masked":
        inputs, targets = mask_items(batch[0], plain.cfg.mask_prob, plain.mask_id)
    else:
        inputs, targets = batch
    hidden, table = model(inputs)
    selected = targets != 0
    return LOSSES[cfg.loss](hidden[selected], targets[selected], table, cfg)


def _train_epoch(
    model,
    loader: DataLoader,
    optimizer,
    accelerator: Accelerator,
    cfg: TrainConfig,
    plain,
    epoch: int,
) -> float:
    """One pass over the training windows (epoch `epoch`, 0-based); the mean batch loss over
    every process."""
    first_step, total_steps = epoch * len(loader), cfg.epochs * len(loader)
    total, steps = 0.0, 0
    model.train()
    for batch in loader:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(
                cfg.lr, cfg.warmup, cfg.schedule, first_step + steps, total_steps
            )
        loss = _batch_loss(model, batch, cfg, plain)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        total, steps = total + loss.item(), steps + 1
    return _across_processes(accelerator, total / max(steps, 1), "mean")


@torch.no_grad()
def mean_training_loss(
    model: SequentialRecommender, dataset: SequenceDataset, cfg: TrainConfig, dropout: bool = False
) -> float:
    """The mean batch loss over the training windows, as an epoch's log reports it, but with
    frozen weights and no dropout by default: how well a model fits its training data."""
    was_training = model.training
    loader = DataLoader(_training_tensors(model, dataset), batch_size=cfg.batch_size)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(cfg.seed)  # the same dropout and cloze masks for every model
        try:
            model.train(dropout)
            losses = [float(_batch_loss(model, list(batch), cfg, model)) for batch in loader]
        finally:
            model.train(was_training)
    return sum(losses) / max(len(losses), 1)


def _across_processes(accelerator: Accelerator, value: float, how: str) -> float:
    """One value for every process: the mean of theirs ("mean"; an epoch's loss over every
    share of the batches) or the main process's ("main"; so that all stop early together)."""
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=accelerator.device)
    return (accelerator.reduce(tensor, "mean") if how == "mean" else broadcast(tensor)).item()


def _resume_key(model: SequentialRecommender, dataset: SequenceDataset, cfg: TrainConfig) -> dict:
    """What must match for a saved state to be resumed (more epochs or patience are fine)."""
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    train = cfg.model_dump(exclude={*cfg.budget_fields(), *RUNTIME_FIELDS})
    return {
        "model": model.cfg.model_dump(),
        "train": train,
        "shapes": shapes,
        # a checkpoint restores an external table's buffers as saved: never resume on another
        "inputs": {"data": dataset.manifest["content_hash"], "table": model.item_embedding.source},
    }


def _save_state(path: Path, model, optimizer, state: TrainState, key: dict) -> None:
    progress = asdict(state) | {"history": [epoch.to_json() for epoch in state.history]}
    save_checkpoint(path, key, progress, {MODEL: model.state_dict()}, optimizer=optimizer)


def epochs_done(output_dir: Path) -> int:
    """How many epochs the resumable state in `output_dir` has trained (0 when there is none)."""
    progress = read_progress(Path(output_dir) / TRAIN_STATE)
    return progress["epoch"] if progress else 0


def _load_state(path: Path, model, optimizer, key: dict) -> TrainState | None:
    """The state saved at `path` (None if there is none), its weights and optimizer restored;
    one saved under another key is refused: its epochs belong to another training."""
    what = "a training state from another model, other settings, data or item table"
    saved = load_checkpoint(path, key, optimizer=optimizer, what=what)
    if saved is None:
        return None
    model.load_state_dict(saved.tensors[MODEL])
    history = [EpochRecord.from_json(e, path) for e in saved.progress["history"]]
    return TrainState(**saved.progress | {"history": history})


def fit(
    model: SequentialRecommender,
    dataset: SequenceDataset,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    output_dir: str | Path | None,
    *,
    meta: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train with early stopping on validation NDCG@10; the best weights end up in `model`.

    `output_dir/best` holds the best checkpoint, `output_dir/state` the resumable state and
    `output_dir/history.json` the epochs. With `output_dir=None` nothing is written: the best
    weights are kept in memory (the same values a checkpoint would restore), and an
    interrupted training cannot resume.
    """
    output_dir = Path(output_dir) if output_dir is not None else None
    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    set_seed(train_cfg.seed)
    accelerator = stage_accelerator(mixed_precision=train_cfg.mixed_precision)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
    )
    state, key = TrainState(), _resume_key(model, dataset, train_cfg)
    best: dict[str, torch.Tensor] | None = None  # the best weights, when there is no directory
    if output_dir is not None:
        sweep_leftovers(output_dir)  # what a killed run left half-written
        restore_interrupted(output_dir / BEST)
        state = _load_state(output_dir / TRAIN_STATE, model, optimizer, key) or state
    loader = DataLoader(
        _training_tensors(model, dataset), batch_size=train_cfg.batch_size, shuffle=True
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    plain = accelerator.unwrap_model(model)
    bar = tqdm(
        total=train_cfg.epochs,
        initial=state.epoch,
        desc=f"train {plain.cfg.name}",
        disable=not (progress and accelerator.is_main_process),
        unit="epoch",
    )
    while state.epoch < train_cfg.epochs and not state.out_of_patience(train_cfg.patience):
        set_seed(train_cfg.seed + state.epoch)
        start = time.perf_counter()
        epoch_loss = _train_epoch(
            model, loader, optimizer, accelerator, train_cfg, plain, state.epoch
        )
        valid = evaluate(plain, dataset, "valid", eval_cfg).metrics[VALID_METRIC]
        valid = _across_processes(accelerator, valid, "main")
        improved = state.end_epoch(epoch_loss, valid, time.perf_counter() - start)
        if output_dir is None:
            if improved:  # every process keeps its own copy: the same weights on each
                best = {name: t.detach().clone() for name, t in plain.state_dict().items()}
        elif accelerator.is_main_process:
            if improved:
                save_model(plain, output_dir / BEST, meta)
            _save_state(output_dir / TRAIN_STATE, plain, optimizer, state, key)
            TrainingHistory(state.history).save(output_dir / HISTORY)
        bar.update(1)
        bar.set_postfix(
            loss=f"{epoch_loss:.4f}",
            valid=f"{valid:.4f}",
            best=f"{state.best_metric:.4f}@{state.best_epoch}",
        )
    bar.close()
    wait_for_everyone()
    if output_dir is not None:
        plain.load_state_dict(load_tensors(output_dir / BEST / MODEL_FILE))
    elif best is not None:
        plain.load_state_dict(best)
    return TrainResult(
        best_epoch=state.best_epoch,
        best_valid=state.best_metric,
        epochs_run=state.epoch,
        seconds=state.seconds,
        seconds_to_best=state.seconds_to_best,
        seconds_per_epoch=state.seconds / max(state.epoch, 1),
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        history=state.history,
        checkpoint=str(output_dir / BEST) if output_dir is not None else None,
    )
