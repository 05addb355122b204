"""Benchmark plain backbones: train, evaluate on test, write the figures as JSON and print them.

    python benchmarks/backbones.py --config configs/ml-1m.yaml --backbone sasrec
    python benchmarks/backbones.py --config configs/ml-100k.yaml --backbone sasrec gru4rec bert4rec

Each run trains from scratch in a fresh output directory, one per backbone and `--set` (so
timings are real, not cache hits; `--resume` instead continues an interrupted run, or one given
a larger train.epochs, from its last epoch; `--run sasrec` publishes, continuing it if needed,
the model `tslrec run` trained as its stage 0 under the same config, without deleting anything)
and records the best validation NDCG@10 (what settings are chosen on), test HR/NDCG/MRR (with
seen items masked and not, from the same model), epochs to best, seconds per epoch, seconds to
the best epoch and the peak resident memory of the process that trained it.
"""

from __future__ import annotations

import shutil

import torch
from common import arguments, machine, publish, result_name

from tslrec.config import load_config
from tslrec.evaluation.evaluator import evaluate
from tslrec.layout import BEST, MODELS
from tslrec.pipeline.train import load_dataset, run_dir, train_and_evaluate
from tslrec.training.checkpoint import load_model


def main() -> None:
    args = arguments(
        __doc__,
        (("--backbone",), {"nargs": "+", "default": ["sasrec"]}),
        (("--resume",), {"action": "store_true", "help": "continue an interrupted or shorter run"}),
        (("--run",), {"help": "use models/RUN (e.g. the pipeline's `sasrec`), never deleted"}),
    )
    if args.run and len(args.backbone) > 1:
        raise SystemExit("--run names one model directory: give one --backbone")
    for backbone in args.backbone:
        cfg = load_config(args.config, args.set).for_backbone(backbone)
        dataset = load_dataset(cfg)
        # each setting its own directory: a run under other overrides never deletes this one
        tag = args.run or f"bench-{result_name(backbone, *args.set)}"
        if not (args.resume or args.run):
            shutil.rmtree(cfg.output_dir / MODELS / tag, ignore_errors=True)
        record = train_and_evaluate(cfg, dataset, tag=tag, progress=False)
        model, _ = load_model(run_dir(cfg, tag) / BEST)
        by_mask = {
            str(mask).lower(): evaluate(
                model.eval(), dataset, "test", cfg.eval.model_copy(update={"mask_seen": mask})
            ).summary()
            for mask in (False, True)
        }
        figures = {
            "dataset": cfg.data.name,
            "backbone": backbone,
            "overrides": args.set,
            "max_len": cfg.model.max_len,
            "protocol": cfg.eval.describe(),
            "dataset_stats": dataset.stats(),
            "test_HR@10": record.test["HR@10"],
            "test_NDCG@10": record.test["NDCG@10"],
            "test": record.test,
            # ML-1M never repeats an item, so many papers rank unseen items only: both, same model
            "test_by_mask_seen": by_mask,
            "best_valid_NDCG@10": record.best_valid_ndcg,  # what settings are chosen on
            "best_epoch": record.best_epoch,
            "epochs_run": record.epochs_run,
            "seconds_per_epoch": record.seconds_per_epoch,
            "seconds_to_best": record.seconds_to_best,
            "peak_memory_mb": record.peak_memory_mb,
            "machine": machine(),
            "torch": torch.__version__,
        }
        name = result_name(cfg.data.name, backbone, *args.set)
        publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
