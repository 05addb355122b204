"""Item representations, shared by the input lookup and the output scoring (tied weights).

Every backbone asks its `ItemEmbedding` for the full (N+1, H) table once per forward pass and
uses it both to embed input sequences and to score all items. This is the seam through which
external (LLM-enhanced) item embeddings enter a model.
"""

from __future__ import annotations

import torch
from torch import nn


class ItemEmbedding(nn.Module):
    """Produces the (N+1, H) item table; row 0 is the padding item and is always zero."""

    num_items: int
    hidden_size: int

    def table(self) -> torch.Tensor:
        raise NotImplementedError


class IdEmbedding(ItemEmbedding):
    """A plain trainable embedding per item id, optionally initialised from a given matrix."""

    def __init__(self, num_items: int, hidden_size: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.num_items, self.hidden_size = num_items, hidden_size
        self.weight = nn.Parameter(torch.empty(num_items + 1, hidden_size))
        nn.init.normal_(self.weight, std=0.02)
        if init is not None:
            self.load_matrix(init)
        with torch.no_grad():
            self.weight[0].zero_()

    def load_matrix(self, matrix: torch.Tensor) -> None:
        """Copy an (N, H) matrix into rows 1..N: how `init` enhancement seeds a backbone."""
        if tuple(matrix.shape) != (self.num_items, self.hidden_size):
            raise ValueError(
                f"expected an item matrix of shape ({self.num_items}, {self.hidden_size}), "
                f"got {tuple(matrix.shape)}"
            )
        with torch.no_grad():
            self.weight[1:].copy_(matrix.to(self.weight.dtype))

    def table(self) -> torch.Tensor:
        # Multiplying by a constant mask keeps the padding row at zero without in-place edits.
        mask = torch.ones_like(self.weight[:, :1])
        mask[0] = 0
        return self.weight * mask
