"""Train one backbone on a prepared dataset, evaluate it on test, and leave readable results.

A finished run directory holds `best/` (the checkpoint), `history.json` (per-epoch loss and
validation metric), `results.json` (test metrics, timings, settings), `test_per_user.parquet`
(per-user ranks for significance tests) and `config.yaml` (the resolved config).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl
from accelerate.utils import set_seed

from tslrec.config import (
    RUNTIME_FIELDS,
    Config,
    TrainConfig,
    load_config,
    save_config,
)
from tslrec.data.dataset import SequenceDataset
from tslrec.data.prepare import prepare_dataset
from tslrec.errors import TslrecError
from tslrec.evaluation.evaluator import check_protocol, evaluate
from tslrec.evaluation.metrics import ranking_summary
from tslrec.io import atomic_path, read_json, restore_interrupted, write_json
from tslrec.keys import content_key
from tslrec.layout import BEST, DATA, MODELS, PER_USER, RESULTS, RUN_CONFIG, RUN_SETTINGS
from tslrec.models import ItemEmbedding, SequentialRecommender, build_model
from tslrec.provenance import git_commit
from tslrec.records import ModelRecord
from tslrec.training.accelerator import (
    launch_key,
    main_process_first,
    process_state,
    wait_for_everyone,
)
from tslrec.training.checkpoint import load_model
from tslrec.training.trainer import epochs_done, fit

log = logging.getLogger(__name__)


def dataset_dir(cfg: Config) -> Path:
    return cfg.output_dir / DATA


def load_dataset(cfg: Config) -> SequenceDataset:
    """The prepared dataset for this config, prepared now if missing or out of date."""
    with main_process_first():
        return prepare_dataset(cfg.data, dataset_dir(cfg))


def stage_key(*parts: object) -> str:
    """A short hash of settings and inputs that names a cached stage or run."""
    return content_key(*parts, length=12)


def settings_key(
    cfg: Config,
    dataset: SequenceDataset,
    meta: dict | None,
    *,
    any_budget: bool = False,
    processes: int | None = None,
) -> str:
    """What a trained model depends on: a finished run is reused only if this is unchanged.

    With `any_budget`, the budget (epochs and early-stopping patience) is left out: a run given
    more epochs or more patience than it had continues from its last epoch, exactly as if it had
    been given them from the start. `processes` is the launch it was trained by (default: this
    one's).
    """
    budget = cfg.train.budget_fields() if any_budget else frozenset()
    train = cfg.train.model_dump(exclude={*RUNTIME_FIELDS, *budget})
    evaluation = cfg.eval.model_dump(exclude={"batch_size"})
    content = dataset.manifest["content_hash"]
    return stage_key(content, cfg.model, train, evaluation, meta, *launch_key(processes))


def run_dir(cfg: Config, tag: str | None = None) -> Path:
    return cfg.output_dir / MODELS / (tag or cfg.model.name)


def _can_continue(out: Path, resumable: str, train: TrainConfig) -> bool:
    """Same settings, and every epoch already trained would also be trained under `train`."""
    saved, previous = out / RUN_SETTINGS, out / RUN_CONFIG
    if not (saved.is_file() and previous.is_file()) or read_json(saved) != resumable:
        return False
    patience = load_config(previous).train.patience
    return epochs_done(out) <= train.epochs and patience <= train.patience


def _set_aside(out: Path) -> None:
    """Make room for a new run without destroying the trained epochs of the one in `out`."""
    if not epochs_done(out):
        shutil.rmtree(out)
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = Path(tempfile.mkdtemp(prefix=f"{out.name}.replaced-{stamp}-", dir=out.parent))
    os.replace(out, aside)  # onto the empty directory just made: a name no other run has
    log.warning("%s was trained under other settings; kept as %s", out, aside.name)


def _at_other_cutoffs(
    out: Path, record: ModelRecord, cfg: Config, dataset: SequenceDataset, meta: dict | None
) -> ModelRecord | None:
    """A finished run that differs from `cfg` in `eval.ks` or `eval.tail_below` alone, scored
    again from its saved ranks.

    Neither touches training (early stopping reads NDCG@10, which every `ks` holds), and the
    saved per-user ranks and targets give the metrics at any cut-off and for any tail rule
    without the model, so asking for them costs seconds, not a retraining.
    """
    scoring = {"ks", "tail_below"}
    trained_eval = load_config(out / RUN_CONFIG).eval.model_dump(include=scoring)
    trained = cfg.model_copy(update={"eval": cfg.eval.model_copy(update=trained_eval)})
    if record.settings_key != settings_key(trained, dataset, meta):
        return None
    if not (out / PER_USER).is_file():
        return None
    per_user = pl.read_parquet(out / PER_USER)
    tail = dataset.item_counts[per_user["target"].to_numpy()] < cfg.eval.tail_below
    per_user = per_user.with_columns(tail=pl.Series(tail))
    where = {name: record.test[name] for name in ("split", "protocol", "mask_seen")}
    test = {**where, **ranking_summary(per_user, cfg.eval.ks)}
    settings = settings_key(cfg, dataset, meta)
    record = record.model_copy(update={"test": test, "settings_key": settings})
    wait_for_everyone()  # every process has read the files it decided on
    if process_state().is_main_process:  # the record last: it is what marks the run finished
        write_json(out / RUN_SETTINGS, settings_key(cfg, dataset, meta, any_budget=True))
        save_config(cfg, out / RUN_CONFIG)
        with atomic_path(out / PER_USER) as tmp:  # its tail column follows the new rule
            per_user.write_parquet(tmp)
        record.save(out / RESULTS)
    wait_for_everyone()
    return record


def train_and_evaluate(
    cfg: Config,
    dataset: SequenceDataset,
    *,
    item_embedding: ItemEmbedding | None = None,
    tag: str | None = None,
    meta: dict | None = None,
    progress: bool = True,
) -> ModelRecord:
    """Train `cfg.model` (optionally on an enhanced item embedding) and return its results record.

    A finished run with the same settings is reused (at other `eval.ks` cut-offs it is scored
    again from its saved ranks); an interrupted one, or one given more epochs or patience,
    resumes; a run made under other settings (or a larger budget than now asked) is replaced.
    """
    check_protocol(dataset, cfg.eval)  # before a single file of the run is written
    out = run_dir(cfg, tag)
    settings = settings_key(cfg, dataset, meta)
    if (out / RESULTS).is_file():
        record = ModelRecord.load(out / RESULTS)
        if record.settings_key == settings:
            return record
        if (rescored := _at_other_cutoffs(out, record, cfg, dataset, meta)) is not None:
            return rescored
    process = process_state()  # under `accelerate launch`, only the main process writes
    wait_for_everyone()  # ... once every process has looked for a finished run
    if process.is_main_process:
        resumable = settings_key(cfg, dataset, meta, any_budget=True)
        if out.exists() and not _can_continue(out, resumable, cfg.train):
            _set_aside(out)  # other settings, or a smaller budget than used: start over
        for stale in (RESULTS, PER_USER):  # a shorter run's record no longer describes best/
            (out / stale).unlink(missing_ok=True)
        write_json(out / RUN_SETTINGS, resumable)
        save_config(cfg, out / RUN_CONFIG)
    wait_for_everyone()
    commit = git_commit()  # the code that starts (or resumes) it, before commits made meanwhile
    set_seed(cfg.train.seed)
    model = build_model(dataset.num_items, cfg.model, item_embedding)
    result = fit(model, dataset, cfg.train, cfg.eval, out, meta=meta, progress=progress)
    test = evaluate(model, dataset, "test", cfg.eval)
    if process.is_main_process:
        with atomic_path(out / PER_USER) as tmp:
            test.per_user.write_parquet(tmp)
    record = ModelRecord(
        tag=tag or cfg.model.name,
        backbone=cfg.model.name,
        dataset=cfg.data.name,
        seed=cfg.train.seed,
        test=test.summary(),
        best_epoch=result.best_epoch,
        best_valid_ndcg=result.best_valid,
        epochs_run=result.epochs_run,
        seconds=result.seconds,
        seconds_to_best=result.seconds_to_best,
        seconds_per_epoch=result.seconds_per_epoch,
        peak_memory_mb=result.peak_memory_mb,
        settings_key=settings,
        processes=process.num_processes,  # train.batch_size is per process
        git_commit=commit,
        **(meta or {}),
    )
    if process.is_main_process:
        record.save(out / RESULTS)
    wait_for_everyone()
    return record


def _sections(trained: Config, cfg: Config) -> dict[str, tuple]:
    """The config sections a trained model depends on, as (trained, now) pairs."""
    train = [c.train.model_dump(exclude=set(RUNTIME_FIELDS)) for c in (trained, cfg)]
    return {
        "data": (trained.data, cfg.data),
        "model": (trained.model, cfg.model),
        "train": tuple(train),
    }


def load_trained(cfg: Config, dataset: SequenceDataset) -> SequentialRecommender:
    """The plain model `tslrec train` finished for this config, in eval mode; never one still
    training.

    Evaluation settings may differ from training (that is what `evaluate -s eval...` is for);
    data, model and training settings must match, up to those that do not change the result.
    """
    out = run_dir(cfg)
    if not (out / RESULTS).is_file():  # checked first: never touch the files of a running training
        raise TslrecError(
            f"{out}: no finished training (none yet, or one still running or interrupted); "
            "run `tslrec train` with this config first"
        )
    restore_interrupted(out / BEST)
    trained, record = load_config(out / RUN_CONFIG), ModelRecord.load(out / RESULTS)
    expected = settings_key(
        cfg.model_copy(update={"eval": trained.eval}),
        dataset,
        None,
        processes=record.processes,  # a launched training serves one process too
    )
    if record.settings_key != expected:
        what = next(
            (f"'{name}' settings" for name, (a, b) in _sections(trained, cfg).items() if a != b),
            "data",  # the same settings, but the prepared data changed since
        )
        raise TslrecError(
            f"{out} was trained with other {what} than this config; "
            "run `tslrec train` with it first"
        )
    model, _ = load_model(out / BEST)
    return model.eval()
