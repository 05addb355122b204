"""Paired significance over users: the same users, two models, per-user NDCG@k."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats


def per_user_ndcg(per_user: pl.DataFrame, k: int = 10) -> np.ndarray:
    """NDCG@k of each user from the saved ranks, in user order."""
    ranks = per_user.sort("user_idx")["rank"].to_numpy().astype(np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def paired_test(baseline: pl.DataFrame, treatment: pl.DataFrame, k: int = 10) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of treatment vs baseline per-user NDCG@k."""
    a, b = per_user_ndcg(baseline, k), per_user_ndcg(treatment, k)
    if a.shape != b.shape:
        raise ValueError("paired tests need the same users in both results")
    diff = b - a
    t_p = float(stats.ttest_rel(b, a).pvalue) if diff.any() else 1.0
    w_p = float(stats.wilcoxon(b, a, zero_method="zsplit").pvalue) if diff.any() else 1.0
    return {
        "mean_diff": float(diff.mean()),
        "ttest_p": t_p,
        "wilcoxon_p": w_p,
        "users": int(a.size),
    }
