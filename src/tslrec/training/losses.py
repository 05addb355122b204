"""Next-item losses as plug-ins: each maps (hidden, targets, item table) to a scalar.

`hidden` is (M, H): one row per position that has a target; `targets` are item ids in 1..N;
`table` is the (N+1, H) item table (row 0 = padding, never a candidate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tslrec.config import TrainConfig

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, TrainConfig], torch.Tensor]


def _ce_sum(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(hidden @ items.T, targets, reduction="sum")


def full_softmax_ce(
    hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """Cross-entropy over the whole catalogue.

    Memory stays bounded for any catalogue size: above `ce_chunk_size` rows the logits are built
    one chunk at a time and recomputed in the backward pass (activation checkpointing), so at most
    chunk x N logits exist at once.
    """
    items, targets = table[1:], targets - 1
    if hidden.size(0) <= cfg.ce_chunk_size:
        return _ce_sum(hidden, targets, items) / hidden.size(0)
    total = hidden.new_zeros(())
    for h, t in zip(hidden.split(cfg.ce_chunk_size), targets.split(cfg.ce_chunk_size), strict=True):
        total = total + checkpoint(_ce_sum, h, t, items, use_reentrant=False)
    return total / hidden.size(0)


def bce_one_negative(
    hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """The original SASRec objective: each positive against one uniformly sampled negative."""
    negatives = torch.randint(1, table.size(0), targets.shape, device=targets.device)
    pos = (hidden * table[targets]).sum(-1)
    neg = (hidden * table[negatives]).sum(-1)
    return F.binary_cross_entropy_with_logits(
        torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    )


def sampled_softmax(
    hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """Softmax over the positive and `num_negatives` uniform negatives shared across the batch."""
    negatives = torch.randint(1, table.size(0), (cfg.num_negatives,), device=targets.device)
    pos = (hidden * table[targets]).sum(-1, keepdim=True)
    neg = hidden @ table[negatives].T
    neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


LOSSES: dict[str, Loss] = {
    "ce": full_softmax_ce,
    "bce": bce_one_negative,
    "sampled_softmax": sampled_softmax,
}
