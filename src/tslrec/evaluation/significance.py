"""Paired significance over users: the same users, two models, per-user NDCG@k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from tslrec.evaluation.metrics import ndcg_at
from tslrec.layout import PER_USER


def per_user_ndcg(per_user: pl.DataFrame, k: int = 10, rank: str = "rank") -> np.ndarray:
    """NDCG@k of each user from the saved ranks (column `rank`), in user order."""
    return ndcg_at(per_user.sort("user_idx")[rank].to_numpy(), k)


def paired_test_scores(baseline: np.ndarray, treatment: np.ndarray) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of per-user scores, treatment vs baseline."""
    if baseline.shape != treatment.shape:
        raise ValueError("paired tests need the same users in both results")
    diff = treatment - baseline
    changed = bool(diff.any())
    t_p = float(stats.ttest_rel(treatment, baseline).pvalue) if changed else 1.0
    w_p = (
        float(stats.wilcoxon(treatment, baseline, zero_method="zsplit").pvalue) if changed else 1.0
    )
    return {"mean_diff": float(diff.mean()), "ttest_p": t_p, "wilcoxon_p": w_p, "users": diff.size}


def paired_test(baseline: pl.DataFrame, treatment: pl.DataFrame, k: int = 10) -> dict[str, float]:
    """Paired tests of two models' saved per-user ranks on per-user NDCG@k."""
    return paired_test_scores(per_user_ndcg(baseline, k), per_user_ndcg(treatment, k))


def view_ndcg(per_user: pl.DataFrame, view: str, k: int = 10) -> np.ndarray:
    """Per-user NDCG@k of one view of an evaluation (see `evaluation.metrics.ranking_summary`):
    tail views keep the users whose target is a tail item, sampled views read `sampled_rank`."""
    if "tail" in view:
        per_user = per_user.filter(pl.col("tail"))
    return per_user_ndcg(
        per_user, k, rank="sampled_rank" if view.startswith("sampled_") else "rank"
    )


def paired_views(baseline: Path, treatment: Path, views: list[str]) -> dict[str, dict[str, float]]:
    """Paired tests of two finished runs on per-user NDCG@10 in each view both have scored."""
    runs = [pl.read_parquet(d / PER_USER) for d in (baseline, treatment)]
    return {
        view: paired_test_scores(*(view_ndcg(r, view) for r in runs))
        for view in views
        if all(_scored(r, view) for r in runs)
    }


def _scored(per_user: pl.DataFrame, view: str) -> bool:
    """Whether the evaluation holds the view: sampled ranks, and tail users, where it asks."""
    if view.startswith("sampled_") and "sampled_rank" not in per_user.columns:
        return False
    return "tail" not in view or bool(per_user["tail"].any())


def paired_test_of_runs(baseline: Path, treatment: Path, k: int = 10) -> dict[str, float]:
    """`paired_test` of two finished runs, from the per-user ranks each saved in its directory."""
    return paired_test(
        pl.read_parquet(baseline / PER_USER), pl.read_parquet(treatment / PER_USER), k
    )
