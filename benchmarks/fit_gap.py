"""Does an enhanced backbone fit its training data better or worse than the plain one?

    python benchmarks/fit_gap.py --config configs/ml-1m.yaml \
        --experiment benchmarks/results/experiment-ml-1m-sasrec-seeds.json

A model that is worse on the test split may overfit (lower training loss) or underfit (higher).
For every seed and backbone of a published experiment this reports the logged training loss of
the enhanced model minus the plain one's, averaged over spans of epochs, and the training loss
of each best checkpoint without dropout (`mean_training_loss`: frozen weights, the same
batches for both). Reads the trained models where the experiment recorded them; trains nothing.
Writes benchmarks/results/fit-gap-<experiment>.json and prints it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import arguments, machine, publish

from tslrec.config import load_config
from tslrec.io import read_json
from tslrec.layout import BEST, HISTORY, RUN_CONFIG
from tslrec.pipeline.train import load_dataset
from tslrec.records import EpochRecord, TrainingHistory
from tslrec.training.checkpoint import load_model
from tslrec.training.trainer import mean_training_loss

SPANS = ((1, 5), (6, 20), (21, 60), (61, None))  # epochs, 1-based and inclusive


def loss_gaps(plain: list[EpochRecord], enhanced: list[EpochRecord]) -> dict[str, float | str]:
    """Mean (enhanced - plain) logged loss per span of the epochs both trained."""
    both = min(len(plain), len(enhanced))
    gap = np.array([enhanced[i].loss - plain[i].loss for i in range(both)])
    spans: dict[str, float | str] = {}
    for first, last in SPANS:
        last = both if last is None else min(last, both)
        if first <= last:
            spans[f"epochs {first}-{last}"] = float(gap[first - 1 : last].mean())
    if both > 10:
        higher = int((gap[10:] > 0).sum())
        spans["epochs after 10 with the higher loss"] = f"{higher} of {both - 10}"
    return spans


def main() -> None:
    args = arguments(
        __doc__,
        (("--experiment",), {"type": Path, "required": True, "help": "experiment-*.json"}),
    )
    published = read_json(args.experiment)
    if published["grid"] or len({r["config"] for r in published["runs"]}) > 1:
        raise SystemExit(f"{args.experiment}: one config and no grid expected (runs by seed)")
    base = load_config(args.config, args.set)
    if base.train.num_threads:
        torch.set_num_threads(base.train.num_threads)
    dataset = load_dataset(base)
    runs = {(r["seed"], r["backbone"], r["variant"]): r["model_dir"] for r in published["runs"]}
    rows = []
    for seed, backbone in sorted({(seed, backbone) for seed, backbone, _ in runs}):
        dirs = {v: Path(runs[(seed, backbone, v)]) for v in ("plain", "enhanced")}
        row = {"seed": seed, "backbone": backbone}
        histories = (TrainingHistory.load(dirs[v] / HISTORY).root for v in ("plain", "enhanced"))
        row["loss_gap"] = loss_gaps(*histories)
        for variant, directory in dirs.items():
            model, _ = load_model(directory / BEST)
            train_cfg = load_config(directory / RUN_CONFIG).train
            row[f"{variant}_training_loss"] = mean_training_loss(model, dataset, train_cfg)
        print(row, flush=True)
        rows.append(row)
    figures = {
        "experiment": published["experiment"],
        "rows": rows,
        "machine": machine(),
        "torch": torch.__version__,
    }
    publish(args.out / f"fit-gap-{published['experiment']}.json", figures, args.note)


if __name__ == "__main__":
    main()
