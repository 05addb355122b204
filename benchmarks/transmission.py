"""Does stage 1 transmit? The diagnostics of stages 1 and 2 alone, without any downstream model.

    python benchmarks/transmission.py --config configs/ml-100k.yaml [--set sft.samples=history]
        [--backbone sasrec]

Runs (or takes from the caches of `tslrec run` with the same config) stage 0 and the LLM stages,
and prints what the pipeline measured of them (`tslrec.llm.transmission`): the fine-tuned head's
top-1 / top-5 on one-item prompts against each item's latent category, the linear and k-NN
probes on stage 0's table, on the LLM before fine-tuning and on the stage-2 table, the held-out
users' loss against the mean target, and the SFT wall time. It is how the SFT options are
compared quickly, before the backbones are trained on a table. With `--backbone` it also trains
(or takes from the caches) that backbone plain and enhanced on the table, and records each one's
best validation NDCG@10 (what settings are chosen on) and test NDCG@10: the ablation's last
columns.
Writes benchmarks/results/transmission-<dataset>[-<overrides>].json and prints it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import arguments, llm_stages, machine, publish, result_name

from tslrec.config import load_config
from tslrec.layout import RESULTS
from tslrec.pipeline.tslrec import downstream, item_table
from tslrec.records import ModelRecord


def _downstream(cfg, dataset, stage0_table, backbone: str) -> dict:
    """Plain and enhanced `backbone` on this config's table: validation and test NDCG@10."""
    enhance = cfg.enhance.model_copy(update={"backbones": [backbone]})
    cfg = cfg.model_copy(update={"enhance": enhance})
    table_path, _, key = item_table(cfg, dataset, stage0_table)
    (row,) = downstream(cfg, dataset, table_path, key, progress=False)
    figures = {"backbone": backbone, "mode": row.mode}
    for variant, directory in (("plain", row.plain_dir), ("enhanced", row.enhanced_dir)):
        record = ModelRecord.load(Path(directory) / RESULTS)
        figures[variant] = {
            "valid_NDCG@10": record.best_valid_ndcg,
            "test_NDCG@10": record.test["NDCG@10"],
            "best_epoch": record.best_epoch,
        }
    figures["paired_test_NDCG@10"] = row.paired_test.to_json()
    return figures


def main() -> None:
    args = arguments(
        __doc__,
        (("--backbone",), {"help": "also train this backbone plain and enhanced on the table"}),
    )
    cfg = load_config(args.config, args.set)
    dataset, stage0_table, _, stages = llm_stages(cfg)
    sft = stages.sft
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "overrides": args.set,
        "prompt_rendering": cfg.prompt.rendering,
        "sft": cfg.sft.model_dump(mode="json"),
        "features": cfg.augment.features,
        "transmission": stages.transmission.to_json(),
        "sft_samples": sft.samples,
        "sft_seconds": sft.seconds,
        "sft_seconds_per_epoch": sft.seconds_per_epoch,
        "sft_epoch_losses": sft.epoch_losses,
        "sft_mean_target_loss": sft.mean_target_loss,
        "embed_seconds": stages.embed_seconds,
        "stage1_key": stages.stage1_key,
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
    }
    if args.backbone:
        figures["downstream"] = _downstream(cfg, dataset, stage0_table, args.backbone)
    name = result_name("transmission", cfg.data.name, *args.set)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
