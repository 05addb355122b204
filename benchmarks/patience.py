"""What a shorter early-stopping patience would have cost, replayed from recorded trainings.

    python benchmarks/patience.py --config configs/ml-100k.yaml --patience 3 5 7

Every epoch is seeded (`set_seed(seed + epoch)`), so a training under a smaller patience follows
the recorded one epoch for epoch until it stops: its best epoch, validation NDCG@10 and seconds
are read off the `history.json` of each model under the config's output directory (for each of
`--seeds`, where `tslrec experiment` puts that seed's models), exactly and without training.
Per model and patience: the best epoch and validation NDCG@10 it would keep and the seconds it
would run; where it keeps the recorded best epoch, its test figures are the recorded ones too.
The summary per patience: how many models keep their best epoch, the mean and worst change in
best validation NDCG@10, and the share of all training seconds saved. Only patiences below the
config's (`train.patience`, under which the histories ran) can be replayed. Writes
benchmarks/results/patience-<dataset>.json and prints it.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from common import arguments, machine, publish, result_name

from tslrec.config import load_config
from tslrec.layout import HISTORY, MODELS
from tslrec.pipeline.experiment import with_seed
from tslrec.provenance import git_commit
from tslrec.records import EpochRecord, TrainingHistory
from tslrec.training.trainer import replay_patience


def replay(history: list[EpochRecord], patience: int) -> dict:
    state = replay_patience(history, patience)
    return {
        "patience": patience,
        "best_epoch": state.best_epoch,
        "valid_NDCG@10": state.best_metric,
        "epochs_run": state.epoch,
        "seconds": state.seconds,
        "seconds_to_best": state.seconds_to_best,
    }


def _summary(models: list[dict], patience: int) -> dict:
    pairs = [
        (m["recorded"], next(r for r in m["replays"] if r["patience"] == patience)) for m in models
    ]
    changes = [r["valid_NDCG@10"] / full["valid_NDCG@10"] - 1 for full, r in pairs]
    return {
        "patience": patience,
        "models": len(models),
        "same_best_epoch": sum(r["best_epoch"] == full["best_epoch"] for full, r in pairs),
        "valid_change_%_mean": 100 * statistics.fmean(changes),
        "valid_change_%_worst": 100 * min(changes),
        "seconds_saved_share": 1
        - sum(r["seconds"] for _, r in pairs) / sum(full["seconds"] for full, _ in pairs),
    }


def _model(path: Path, seed: int, recorded: int, patiences: list[int]) -> dict:
    history = list(TrainingHistory.load(path).root)
    return {
        "model": path.parent.name,
        "seed": seed,
        "recorded": replay(history, recorded),
        "replays": [replay(history, p) for p in patiences],
    }


def main() -> None:
    commit = git_commit()  # the code this process runs, whatever is committed meanwhile
    args = arguments(
        __doc__,
        (("--patience",), {"nargs": "+", "type": int, "default": [3, 5, 7]}),
        (("--seeds",), {"nargs": "+", "type": int, "default": [42, 43, 44]}),
    )
    cfg = load_config(args.config, args.set)
    recorded = cfg.train.patience
    if any(p >= recorded or p < 1 for p in args.patience):
        sys.exit(f"--patience: each must be in 1..{recorded - 1} (the histories ran at {recorded})")
    models = []
    for seed in args.seeds:  # each seed's models where `tslrec experiment` puts them
        for path in sorted((with_seed(cfg, seed).output_dir / MODELS).glob(f"*/{HISTORY}")):
            models.append(_model(path, seed, recorded, args.patience))
    if not models:
        sys.exit(f"no {HISTORY} under {cfg.output_dir}: train something first")
    figures = {
        "dataset": cfg.data.name,
        "run_dir": str(cfg.output_dir),
        "recorded_patience": recorded,
        "summary": [_summary(models, p) for p in args.patience],
        "models": models,
        "git_commit": commit,
        "machine": machine(),
        "torch": torch.__version__,
    }
    publish(args.out / f"{result_name('patience-' + cfg.data.name, *args.set)}.json", figures)


if __name__ == "__main__":
    main()
