"""Leave-one-out evaluation: full ranking over the catalogue, or the sampled-negatives protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from tslrec.config import EvalConfig
from tslrec.data.dataset import SequenceDataset, Split, left_pad
from tslrec.errors import TslrecError, warn
from tslrec.evaluation.metrics import ranking_summary, target_ranks
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


def _fewest_unseen(dataset: SequenceDataset) -> tuple[str, int]:
    """The user with the fewest items never interacted with, and how many: the catalogue
    gives every user only that many sampled negatives."""
    unseen = [dataset.num_items - len(np.unique(seq)) for seq in dataset.sequences]
    user = int(np.argmin(unseen))
    return dataset.users[user], unseen[user]


def _require_negatives(dataset: SequenceDataset) -> None:
    if dataset.test_negatives.shape[1] == 0:
        user, _ = _fewest_unseen(dataset)
        raise TslrecError(
            f"eval.protocol 'sampled': user {user!r} has interacted with every one of the "
            f"{dataset.num_items} items, so no negatives can be drawn; use eval.protocol=full"
        )


def check_protocol(dataset: SequenceDataset, cfg: EvalConfig) -> None:
    """Before any training or scoring: the sampled protocol needs negatives for every user,
    and with fewer than asked for (a small catalogue) its metrics are inflated, so say so."""
    if cfg.protocol != "sampled":
        return
    _require_negatives(dataset)
    drawn = dataset.test_negatives.shape[1]
    asked = dataset.manifest.get("settings", {}).get("num_sampled_negatives", drawn)
    if drawn < asked:
        user, unseen = _fewest_unseen(dataset)
        warn(
            f"eval.protocol 'sampled': data.num_sampled_negatives is {asked}, but user {user!r} "
            f"has only {unseen} unseen items of {dataset.num_items}, so every user is ranked "
            f"against {drawn} negatives and the metrics are inflated; lower "
            "data.num_sampled_negatives or use eval.protocol=full"
        )


@torch.no_grad()
def evaluate(
    model: SequentialRecommender, dataset: SequenceDataset, split: Split, cfg: EvalConfig
) -> EvalResult:
    """Rank each user's held-out item; the padding item 0 is never a candidate.

    Full ranking also ranks the target among the split's sampled negatives (`sampled_rank`),
    from the same scores, so one run reports both protocols the literature uses.
    """
    negatives = dataset.negatives(split)
    if cfg.protocol == "sampled":
        _require_negatives(dataset)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    users = np.arange(dataset.num_users)
    targets_all = np.array([dataset.target(u, split) for u in users])
    ranks, sampled = [], []
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
        target_scores = scores.gather(1, targets[:, None])
        if negatives.shape[1]:
            drawn = scores.gather(1, torch.from_numpy(negatives[batch]).to(device))
            candidates = torch.cat([target_scores, drawn], 1)  # the target among its negatives
            sampled.append(target_ranks(candidates, target_scores.squeeze(1)).cpu())
        ranks.append(target_ranks(scores, target_scores.squeeze(1)).cpu())
    model.train(was_training)
    columns = {"user_idx": users, "target": targets_all}
    columns["tail"] = dataset.item_counts[targets_all] < cfg.tail_below
    if cfg.protocol == "sampled":  # the run's own protocol: no second view beside it
        columns["rank"] = torch.cat(sampled).numpy()
    else:
        columns["rank"] = torch.cat(ranks).numpy()
        if sampled:
            columns["sampled_rank"] = torch.cat(sampled).numpy()
    per_user = pl.DataFrame(columns)
    return EvalResult(
        split, cfg.protocol, cfg.mask_seen, ranking_summary(per_user, cfg.ks), per_user
    )
