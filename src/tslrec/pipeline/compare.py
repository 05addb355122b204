"""Is the LLM worth it? TSLRec's table against plain and against controls of the same shape.

`tslrec compare` is an experiment whose grid is ``enhance.table`` (see `tslrec.llm.controls`),
so every table trains through the experiment runner and its caches; this module turns that
experiment's runs into one table per backbone and a verdict that follows from the numbers.
The best control is the one whose enhanced runs score highest on **validation** NDCG@10, so the
test split never picks the comparison it is judged by.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import ValidationError

from tslrec.config import ExperimentConfig, GridConfig, load_config
from tslrec.errors import ConfigError
from tslrec.evaluation.formatting import compare_table, verdict
from tslrec.evaluation.significance import paired_test_scores
from tslrec.io import atomic_path
from tslrec.layout import COMPARISON, COMPARISON_MD, comparison_dir
from tslrec.llm.controls import CONTROLS
from tslrec.pipeline.experiment import run_experiment, seed_mean_ndcg
from tslrec.records import COMPARE_METRICS, CompareReport, CompareRow
from tslrec.training.accelerator import process_state, wait_for_everyone


def compare_experiment(
    config: Path,
    tables: Sequence[str],
    seeds: Sequence[int],
    backbones: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> ExperimentConfig:
    """The experiment behind `tslrec compare`: one cell per table, named after the dataset, in
    the `experiments/` beside the config's output directory (runs/experiments by default)."""
    cfg = load_config(config, list(overrides))
    where = comparison_dir(cfg.output_dir, cfg.data.name)
    fields = {
        "name": where.name,
        "output_dir": where.parent,
        "configs": [config],
        "backbones": list(backbones) if backbones else None,
        "seeds": list(seeds),
        "grid": GridConfig(key="enhance.table", values=list(tables)),
        "overrides": list(overrides),
    }
    try:
        return ExperimentConfig.model_validate(fields)
    except ValidationError as err:
        raise ConfigError(f"cannot compare tables on {config}: {err.errors()[0]['msg']}") from None


def compare_rows(results: pl.DataFrame) -> list[CompareRow]:
    """Per backbone: plain, then each table, with its figures, its gain over plain, and paired
    tests (over users, per-user NDCG@10 averaged across seeds) against plain and against the
    best control. `results` are `run_experiment`'s rows of a grid over ``enhance.table``."""
    rows = []
    for backbone in results["backbone"].unique(maintain_order=True):
        runs = results.filter(pl.col("backbone") == backbone)
        plain = runs.filter(pl.col("variant") == "plain").unique("seed", maintain_order=True)
        plain_row = _figures(backbone, "plain", plain)
        rows.append(CompareRow.model_validate(plain_row))
        plain_scores = seed_mean_ndcg(plain, "plain")
        enhanced = runs.filter(pl.col("variant") == "enhanced")
        tables = enhanced["table"].unique(maintain_order=True).to_list()
        by_table = {t: enhanced.filter(pl.col("table") == t) for t in tables}
        best = _best_control(by_table)
        best_scores = seed_mean_ndcg(by_table[best], "enhanced") if best else None
        for table, group in by_table.items():
            row = _figures(backbone, table, group)
            scores = seed_mean_ndcg(group, "enhanced")
            change = row["NDCG@10_mean"] / plain_row["NDCG@10_mean"] - 1
            row["change_NDCG@10_%"] = 100 * change
            row["p_vs_plain"] = paired_test_scores(plain_scores, scores)["ttest_p"]
            row["best_control"] = best
            if best_scores is not None and table != best:
                row["p_vs_best_control"] = paired_test_scores(best_scores, scores)["ttest_p"]
            rows.append(CompareRow.model_validate(row))
    return rows


def _best_control(by_table: dict[str, pl.DataFrame]) -> str | None:
    """The control with the highest mean validation NDCG@10 of its enhanced runs."""
    controls = {t: g["best_valid_NDCG@10"].mean() for t, g in by_table.items() if t in CONTROLS}
    return max(controls, key=lambda t: controls[t]) if controls else None


def _figures(backbone: str, table: str, runs: pl.DataFrame) -> dict:
    """A `CompareRow`'s figures, keyed as in its file."""
    row: dict = {"backbone": backbone, "table": table, "seeds": runs["seed"].n_unique()}
    for metric in COMPARE_METRICS:
        if metric in runs.columns and runs[metric].null_count() == 0:
            values = runs[metric].to_numpy()
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    row["train_seconds"] = float(np.mean(runs["train_seconds"].to_numpy()))
    if table != "plain":
        row["table_seconds"] = float(runs["table_seconds"][0])
        row["table_memory_mib"] = float(runs["table_memory_mib"][0])
    return row


def run_compare(exp: ExperimentConfig, progress: bool = True) -> tuple[list[CompareRow], str]:
    """Run the comparison (every cached training reused); write compare.{json,md} beside the
    experiment's tables; return the rows and the verdict."""
    results = run_experiment(exp, progress=progress)
    rows = compare_rows(results)
    sentence = verdict(rows)
    if process_state().is_main_process:
        out = exp.output_dir / exp.name
        CompareReport(rows=rows, verdict=sentence).save(out / COMPARISON)
        with atomic_path(out / COMPARISON_MD) as tmp:
            tmp.write_text(f"{exp.name}\n\n{compare_table(rows)}\n\n{sentence}\n")
    wait_for_everyone()
    return rows, sentence
