"""Ranking metrics from 0-based ranks of the held-out item (0 = ranked first)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
import torch


def target_ranks(scores: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank: every other candidate scoring at least as high is ranked above the target.

    Ties count against the model, so a constant scorer gets the worst rank rather than the best.
    """
    # those scoring higher and the ties but the target itself: one pass over the scores
    return (scores >= target_scores.unsqueeze(1)).sum(1) - 1


def ndcg_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """Each user's NDCG@k from the 0-based rank of their one relevant item."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """HR@k, NDCG@k and MRR@k averaged over users, for a single relevant item per user."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(ndcg_at(ranks, k).mean())
        out[f"MRR@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def ranking_summary(per_user: pl.DataFrame, ks: Iterable[int]) -> dict[str, float]:
    """Metrics of each view of one evaluation that `per_user` holds, each view's names prefixed.

    No prefix: every user's `rank` under the run's protocol. `tail_`: the users whose target is a
    tail item (column `tail`), with `tail_users` their count. `sampled_` and `sampled_tail_`: the
    same from `sampled_rank`, the sampled protocol scored beside full ranking. One function reads
    every view, so a run rescored from its saved ranks reports exactly what it reported trained.
    """
    ks = list(ks)
    frame = per_user.sort("user_idx")
    tail = frame["tail"].to_numpy() if "tail" in frame.columns else None
    out: dict[str, float] = {}
    for prefix, column in (("", "rank"), ("sampled_", "sampled_rank")):
        if column not in frame.columns:
            continue
        ranks = frame[column].to_numpy()
        out |= {f"{prefix}{name}": v for name, v in metrics_from_ranks(ranks, ks).items()}
        if tail is not None and tail.any():
            tail_metrics = metrics_from_ranks(ranks[tail], ks)
            out |= {f"{prefix}tail_{name}": v for name, v in tail_metrics.items()}
    if tail is not None:
        out["tail_users"] = int(tail.sum())
    return out
