"""Plain vs TSLRec-enhanced backbones over several seeds, with paired tests per user.

    python benchmarks/tslrec_quality.py --config configs/ml-100k.yaml --seeds 42 43 44

A one-config experiment (see `tslrec experiment`): stages 0-2 run once with the config's seed,
then each backbone is trained plain and enhanced under every seed at identical settings.
Writes benchmarks/results/quality-<dataset>.json (summary, stage costs, every run) and prints it.
"""

from __future__ import annotations

import polars as pl
from common import arguments, publish

from tslrec.config import ExperimentConfig, load_config
from tslrec.pipeline.experiment import run_experiment


def main() -> None:
    args = arguments(__doc__, (("--seeds",), {"nargs": "+", "type": int, "default": [42, 43, 44]}))
    cfg = load_config(args.config, args.set)
    exp = ExperimentConfig(
        name=f"quality-{cfg.data.name}",
        configs=[args.config],
        seeds=args.seeds,
        overrides=args.set,
    )
    runs = run_experiment(exp)
    summary = pl.read_parquet(exp.output_dir / exp.name / "summary.parquet")
    first = runs.row(0, named=True)
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "mode": cfg.enhance.mode,
        "seeds": args.seeds,
        "overrides": args.set,
        "summary": {row["backbone"]: row for row in summary.iter_rows(named=True)},
        "stages": {
            key: first[key]
            for key in ("stage0_seconds", "sft_samples", "sft_seconds", "embed_seconds")
        },
        "git_commit": first["git_commit"],
        "runs": runs.drop("settings").to_dicts(),
    }
    publish(args.out / f"quality-{cfg.data.name}.json", figures)


if __name__ == "__main__":
    main()
