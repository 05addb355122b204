"""Paired significance over users: the same users, two models, per-user NDCG@k."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats


def per_user_ndcg(per_user: pl.DataFrame, k: int = 10) -> np.ndarray:
    """NDCG@k of each user from the saved ranks, in user order."""
    ranks = per_user.sort("user_idx")["rank"].to_numpy().astype(np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


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
