"""Leave-one-out evaluation: full ranking over the catalogue, or the sampled-negatives protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from tslrec.config import EvalConfig
from tslrec.data.dataset import SequenceDataset, Split, left_pad
from tslrec.errors import TslrecError
from tslrec.evaluation.metrics import metrics_from_ranks, target_ranks
from tslrec.models.base import SequentialRecommender


@dataclass
class EvalResult:
    split: str
    protocol: str
    mask_seen: bool
    metrics: dict[str, float]
    per_user: pl.DataFrame  # user_idx, target, rank: kept for paired significance tests

    def summary(self) -> dict:
        return {
            "split": self.split,
            "protocol": self.protocol,
            "mask_seen": self.mask_seen,
            **self.metrics,
        }


def _mask_seen(scores: torch.Tensor, hist: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, hist, True)
    seen[torch.arange(len(targets)), targets] = False
    return scores.masked_fill(seen, float("-inf"))


@torch.no_grad()
def evaluate(
    model: SequentialRecommender, dataset: SequenceDataset, split: Split, cfg: EvalConfig
) -> EvalResult:
    """Rank each user's held-out item; the padding item 0 is never a candidate."""
    if cfg.protocol == "sampled" and dataset.negatives(split).shape[1] == 0:
        raise TslrecError("the dataset has no sampled negatives (its catalogue is too small)")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    users = np.arange(dataset.num_users)
    targets_all = np.array([dataset.target(u, split) for u in users])
    ranks = []
    for start in range(0, len(users), cfg.batch_size):
        batch = users[start : start + cfg.batch_size]
        hist = torch.from_numpy(dataset.histories(batch, split, model.cfg.max_len)).to(device)
        targets = torch.from_numpy(targets_all[batch]).to(device)
        scores = model.score(hist).float()
        scores[:, 0] = float("-inf")
        if cfg.mask_seen:
            full = [dataset.history(u, split) for u in batch]
            seen = torch.from_numpy(left_pad(full, max(map(len, full)))).to(device)
            scores = _mask_seen(scores, seen, targets)
        if cfg.protocol == "sampled":
            negatives = torch.from_numpy(dataset.negatives(split)[batch]).to(device)
            scores = torch.cat([scores.gather(1, targets[:, None]), scores.gather(1, negatives)], 1)
            ranks.append(target_ranks(scores, scores[:, 0]).cpu())
        else:
            ranks.append(target_ranks(scores, scores.gather(1, targets[:, None]).squeeze(1)).cpu())
    model.train(was_training)
    rank_arr = torch.cat(ranks).numpy()
    per_user = pl.DataFrame({"user_idx": users, "target": targets_all, "rank": rank_arr})
    return EvalResult(
        split, cfg.protocol, cfg.mask_seen, metrics_from_ranks(rank_arr, cfg.ks), per_user
    )
