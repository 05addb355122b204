"""Publish `tslrec experiment` grids: plain vs TSLRec over seeds and LLM-stage settings.

    python benchmarks/experiments.py --config configs/experiments/ml-100k-seeds.yaml

`--seeds` publishes a subset of the file's seeds (an experiment still under way); its tables go
to runs/experiments/<name>-seeds-<seeds>/, leaving the full experiment's own. `--name` publishes
under another name, keeping the file of the same grid measured on another machine.

Runs the experiment (every finished training comes from the pipeline's caches) and writes
benchmarks/results/experiment-<name>.json: the summary rows (mean and std over seeds, relative
change, paired tests over users), the cost of the LLM stages of each cell, and every run.
"""

from __future__ import annotations

import polars as pl
import torch
from common import arguments, machine, publish

from tslrec.config import load_config, load_experiment, only_seeds
from tslrec.layout import EXPERIMENT_SUMMARY
from tslrec.pipeline.experiment import run_experiment

STAGE_COSTS = ("stage0_seconds", "sft_samples", "sft_seconds", "embed_seconds")


def main() -> None:
    args = arguments(
        __doc__,
        (("--seeds",), {"nargs": "+", "type": int, "help": "only these of the file's seeds"}),
        (("--name",), {"help": "publish as experiment-NAME.json (default: the experiment's)"}),
    )
    exp = load_experiment(args.config, args.set)
    name = args.name or exp.name
    if args.seeds:
        exp = only_seeds(exp, args.seeds)
    runs = run_experiment(exp)
    summary = pl.read_parquet(exp.output_dir / exp.name / EXPERIMENT_SUMMARY)
    cfg = load_config(exp.configs[0], exp.overrides)
    cells = runs.unique(["dataset", "grid_value"], maintain_order=True)
    figures = {
        "experiment": name,
        "llm": cfg.llm.model,
        "mode": None if exp.grid and exp.grid.key == "enhance.mode" else cfg.enhance.mode,
        "seeds": exp.seeds,
        "grid": exp.grid.model_dump() if exp.grid else None,
        "summary": summary.to_dicts(),
        "stages": cells.select("dataset", "grid_value", *STAGE_COSTS).to_dicts(),
        "git_commit": runs["git_commit"][0],
        "machine": machine(),
        "torch": torch.__version__,
        "runs": runs.drop("settings").to_dicts(),
    }
    publish(args.out / f"experiment-{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
