"""Ranking metrics from 0-based ranks of the held-out item (0 = ranked first)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def target_ranks(scores: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank: every other candidate scoring at least as high is ranked above the target.

    Ties count against the model, so a constant scorer gets the worst rank rather than the best.
    """
    higher = (scores > target_scores.unsqueeze(1)).sum(1)
    ties = (scores == target_scores.unsqueeze(1)).sum(1) - 1
    return higher + ties


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
