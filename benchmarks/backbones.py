"""Benchmark plain backbones: train, evaluate on test, write the figures as JSON and print them.

    python benchmarks/backbones.py --config configs/ml-1m.yaml --backbone sasrec
    python benchmarks/backbones.py --config configs/ml-100k.yaml --backbone sasrec gru4rec bert4rec

Each run trains from scratch in a fresh output directory (so timings are real, not cache hits;
`--resume` instead continues an interrupted run from its last epoch) and records test
HR/NDCG/MRR, epochs to best, seconds per epoch, seconds to the best epoch and peak resident
memory.
"""

from __future__ import annotations

import platform
import re
import shutil
import time

import torch
from common import arguments, publish

from tslrec.config import load_config
from tslrec.pipeline.backbone import load_dataset, train_and_evaluate


def main() -> None:
    args = arguments(
        __doc__,
        (("--backbone",), {"nargs": "+", "default": ["sasrec"]}),
        (("--resume",), {"action": "store_true", "help": "continue an interrupted run"}),
    )
    for backbone in args.backbone:
        cfg = load_config(args.config, [*args.set, f"model.name={backbone}"])
        dataset = load_dataset(cfg)
        tag = f"bench-{backbone}"
        if not args.resume:
            shutil.rmtree(cfg.output_dir / "models" / tag, ignore_errors=True)
        start = time.perf_counter()
        record = train_and_evaluate(cfg, dataset, tag=tag, progress=False)
        figures = {
            "dataset": cfg.data.name,
            "backbone": backbone,
            "overrides": args.set,
            "max_len": cfg.model.max_len,
            "protocol": cfg.eval.describe(),
            "dataset_stats": dataset.stats(),
            "test_HR@10": record["test"]["HR@10"],
            "test_NDCG@10": record["test"]["NDCG@10"],
            "test": record["test"],
            "best_epoch": record["best_epoch"],
            "epochs_run": record["epochs_run"],
            "seconds_per_epoch": record["seconds_per_epoch"],
            "seconds_to_best": record["seconds_to_best"],
            "seconds_total": time.perf_counter() - start,
            "peak_memory_mb": record["peak_memory_mb"],
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__,
        }
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join([cfg.data.name, backbone, *args.set]))
        publish(args.out / f"{name}.json", figures)


if __name__ == "__main__":
    main()
