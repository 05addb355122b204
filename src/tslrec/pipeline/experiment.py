"""Experiments: pipeline configs x grid values x seeds, every run a row of one tidy table.

Each (config, grid value) runs stages 0-2 through the pipeline's caches, so a stage shared by
several cells (stage 0 across values of K, everything across seeds) is computed once. Each seed
then trains the plain and the enhanced backbones at identical settings; the config's own seed
lands in the config's output directory, where `tslrec run` puts it, other seeds in `seed-N/`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from tslrec.config import Config, ExperimentConfig, load_config
from tslrec.errors import ConfigError
from tslrec.evaluation.formatting import (
    SUMMARY_METRICS,
    VARIANTS,
    VIEWS,
    relative_change,
    summary_table,
)
from tslrec.evaluation.significance import paired_test_scores, view_ndcg
from tslrec.io import atomic_path, write_json
from tslrec.layout import (
    EXPERIMENT_RUNS,
    EXPERIMENT_SPEC,
    EXPERIMENT_SUMMARY,
    EXPERIMENT_SUMMARY_MD,
    PER_USER,
    RESULTS,
)
from tslrec.pipeline.train import load_dataset
from tslrec.pipeline.tslrec import downstream, item_table, stage0
from tslrec.provenance import git_commit
from tslrec.records import ComparisonRow, ModelRecord
from tslrec.training.accelerator import process_state, wait_for_everyone


def with_seed(cfg: Config, seed: int) -> Config:
    """The same run under another seed, in its own directory so no model overwrites another."""
    output_dir = cfg.output_dir if seed == cfg.train.seed else cfg.output_dir / f"seed-{seed}"
    train = cfg.train.model_copy(update={"seed": seed})
    return cfg.model_copy(update={"train": train, "output_dir": output_dir})


def cell_configs(exp: ExperimentConfig) -> list[tuple[Path, str | None, Config]]:
    """(config file, grid value as JSON, resolved config) for every cell of the grid."""
    values = [json.dumps(v) for v in exp.grid.values] if exp.grid else [None]
    cells = []
    for path in exp.configs:
        for value in values:
            overrides = list(exp.overrides)
            if exp.backbones:
                overrides.append(f"enhance.backbones={json.dumps(exp.backbones)}")
            if value is not None:
                overrides.append(f"{exp.grid.key}={value}")
            cells.append((path, value, load_config(path, overrides)))
    _one_config_per_dataset(exp, cells)
    return cells


def _one_config_per_dataset(
    exp: ExperimentConfig, cells: list[tuple[Path, str | None, Config]]
) -> None:
    """The summary groups runs by dataset: two configs of one dataset would pool their seeds
    into one mean and one paired test, and train into the same output directory."""
    first: dict[str, Path] = {}
    for path, _, cfg in cells:
        dataset = cfg.data.name
        if first.setdefault(dataset, path) != path:
            raise ConfigError(
                f"experiment '{exp.name}': {first[dataset]} and {path} are both dataset "
                f"'{dataset}'; give each config its own experiment, or vary the setting with `grid`"
            )


def run_experiment(exp: ExperimentConfig, progress: bool = False) -> pl.DataFrame:
    """Run every cell and seed; write results.{parquet,csv}, summary.{parquet,csv,md} and
    experiment.json, which every process of a launch may read once this returns."""
    commit, rows = git_commit(), []
    for path, value, cfg in cell_configs(exp):
        dataset = load_dataset(cfg)
        stage0_record, item_embeddings = stage0(cfg, dataset, progress)
        table_path, stages, table_key = item_table(cfg, dataset, item_embeddings)
        for seed in exp.seeds:
            seeded = with_seed(cfg, seed)
            for row in downstream(seeded, dataset, table_path, table_key, progress):
                cell = {
                    "experiment": exp.name,
                    "config": str(path),
                    "dataset": cfg.data.name,
                    "grid_key": exp.grid.key if exp.grid else None,
                    "grid_value": value,
                    "seed": seed,
                    "stage0_seconds": stage0_record.seconds,
                    "sft_samples": stages.sft.samples,
                    "sft_seconds": stages.sft.seconds,  # also when reused from cache
                    "embed_seconds": stages.embed_seconds,
                    "table": cfg.enhance.table,
                    "table_seconds": stages.table_seconds,  # what making the table cost
                    "table_memory_mib": stages.table_memory_mib,  # peak growth
                    "git_commit": commit,
                    "settings": json.dumps(seeded.model_dump(mode="json"), sort_keys=True),
                }
                rows.extend(_variant_rows(cell, row))
    results = pl.DataFrame(rows)
    if process_state().is_main_process:
        _write(exp, results)
    wait_for_everyone()
    return results


def _variant_rows(cell: dict, row: ComparisonRow) -> list[dict]:
    out = []
    for variant in VARIANTS:
        model_dir = row.plain_dir if variant == "plain" else row.enhanced_dir
        record = ModelRecord.load(Path(model_dir) / RESULTS)
        out.append(
            {
                **cell,
                "backbone": row.backbone,
                "variant": variant,
                "mode": row.mode if variant == "enhanced" else "id",
                **record.test,
                "best_epoch": record.best_epoch,
                "best_valid_NDCG@10": record.best_valid_ndcg,
                "epochs_run": record.epochs_run,
                "train_seconds": record.seconds,
                "seconds_to_best": record.seconds_to_best,
                "seconds_per_epoch": record.seconds_per_epoch,
                "model_dir": model_dir,
                # the code that trained it; None when trained outside a git checkout
                "trained_commit": record.git_commit,
            }
        )
    return out


def summarize(results: pl.DataFrame) -> pl.DataFrame:
    """Per (dataset, grid value, backbone): mean and std over seeds, relative change, and a
    paired test over users of per-user NDCG@10 averaged across seeds, for every view the runs
    scored (all users, tail targets, and the sampled protocol beside full ranking)."""
    keys = ["dataset", "grid_key", "grid_value", "backbone"]
    views = [v for v in VIEWS if _scored(results, v)]
    rows = []
    for group_key, group in results.group_by(keys, maintain_order=True):
        entry = dict(zip(keys, group_key, strict=True))
        entry["seeds"] = group["seed"].n_unique()
        if "tail_users" in group.columns:
            entry["tail_users"] = int(group["tail_users"][0])
        for view in views:
            entry |= _view_summary(group, view)
        rows.append(entry)
    return pl.DataFrame(rows)


def _scored(results: pl.DataFrame, view: str) -> bool:
    """Whether every run holds the view (a dataset without tail targets has no tail view)."""
    column = f"{view}{SUMMARY_METRICS[0]}"
    return column in results.columns and results[column].null_count() == 0


def _view_summary(group: pl.DataFrame, view: str) -> dict:
    entry: dict = {}
    for metric in (f"{view}{m}" for m in SUMMARY_METRICS):
        for variant in VARIANTS:
            values = group.filter(pl.col("variant") == variant)[metric].to_numpy()
            entry[f"{variant}_{metric}_mean"] = float(values.mean())
            entry[f"{variant}_{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        before, after = (entry[f"{v}_{metric}_mean"] for v in VARIANTS)
        entry[f"change_{metric}_%"] = 100 * relative_change(before, after)
    test = paired_test_scores(*(seed_mean_ndcg(group, v, view) for v in VARIANTS))
    return entry | {f"paired_{view}{k}": v for k, v in test.items()}


def seed_mean_ndcg(group: pl.DataFrame, variant: str, view: str = "") -> np.ndarray:
    """Per-user NDCG@10 of one view, averaged over seeds (tail views: tail users only)."""
    dirs = group.filter(pl.col("variant") == variant).sort("seed")["model_dir"]
    scores = [view_ndcg(pl.read_parquet(Path(d) / PER_USER), view) for d in dirs]
    return np.mean(scores, axis=0)


def _write(exp: ExperimentConfig, results: pl.DataFrame) -> None:
    out = exp.output_dir / exp.name
    summary = summarize(results)
    for name, frame in ((EXPERIMENT_RUNS, results), (EXPERIMENT_SUMMARY, summary)):
        with atomic_path(out / name) as tmp:
            frame.write_parquet(tmp)
        with atomic_path((out / name).with_suffix(".csv")) as tmp:
            frame.write_csv(tmp)
    with atomic_path(out / EXPERIMENT_SUMMARY_MD) as tmp:
        tmp.write_text(f"Experiment {exp.name}\n\n{summary_table(summary.to_dicts())}\n")
    write_json(out / EXPERIMENT_SPEC, exp.model_dump(mode="json"))
