"""Plain vs TSLRec-enhanced backbones over several seeds, with paired tests per user.

    python benchmarks/tslrec_quality.py --config configs/ml-100k.yaml --seeds 42 43 44

Stage 0, 1 and 2 run once (with the config's seed); each downstream backbone is then trained
plain and enhanced under every seed at identical hyper-parameters. Writes
benchmarks/results/quality-<dataset>.json and prints it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from common import arguments, publish

from tslrec.config import load_config
from tslrec.evaluation.significance import paired_test_scores, per_user_ndcg
from tslrec.pipeline.backbone import load_dataset
from tslrec.pipeline.tslrec import downstream, stage0, stage1_and_2


def main() -> None:
    args = arguments(__doc__, (("--seeds",), {"nargs": "+", "type": int, "default": [42, 43, 44]}))
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg)
    stage0_record, item_embeddings = stage0(cfg, dataset, progress=False)
    table_path, stages = stage1_and_2(cfg, dataset, item_embeddings, stage0_record["settings_key"])
    runs = []
    for seed in args.seeds:
        seeded = load_config(args.config, [*args.set, f"train.seed={seed}"])
        seeded = seeded.model_copy(update={"output_dir": cfg.output_dir / f"seed-{seed}"})
        for row in downstream(
            seeded, load_dataset(seeded), table_path, stages["stage2_key"], False
        ):
            runs.append({"seed": seed, **row})
    summary = {}
    for name in cfg.enhance.backbones:
        mine = [r for r in runs if r["backbone"] == name]
        entry = {}
        for variant in ("plain", "enhanced"):
            for metric in ("NDCG@10", "HR@10"):
                values = np.array([r[variant][metric] for r in mine])
                entry[f"{variant}_{metric}_mean"] = float(values.mean())
                entry[f"{variant}_{metric}_std"] = (
                    float(values.std(ddof=1)) if len(values) > 1 else 0.0
                )
        entry["relative_NDCG@10_%"] = 100 * (
            entry["enhanced_NDCG@10_mean"] / entry["plain_NDCG@10_mean"] - 1
        )
        entry["paired_test_per_seed"] = [r["paired_test_NDCG@10"] for r in mine]
        entry["paired_test_pooled"] = _pooled_test(mine)
        summary[name] = entry
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "mode": cfg.enhance.mode,
        "seeds": args.seeds,
        "overrides": args.set,
        "summary": summary,
        "stages": {k: v for k, v in stages.items() if k not in ("prompt",)},
        "runs": runs,
    }
    publish(args.out / f"quality-{cfg.data.name}.json", figures)


def _pooled_test(rows: list[dict]) -> dict:
    """Per-user NDCG@10 averaged over seeds, then one paired test over users."""

    def mean_ndcg(key: str) -> np.ndarray:
        frames = [pl.read_parquet(Path(r[key]) / "test_per_user.parquet") for r in rows]
        return np.mean([per_user_ndcg(f) for f in frames], axis=0)

    return paired_test_scores(mean_ndcg("plain_dir"), mean_ndcg("enhanced_dir"))


if __name__ == "__main__":
    main()
