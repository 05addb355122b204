"""BERT4Rec (Sun et al., 2019): a bidirectional Transformer trained to fill in masked items."""

from __future__ import annotations

import torch
from torch import nn

from tslrec.config import ModelConfig
from tslrec.models.base import SequentialRecommender
from tslrec.models.item_embedding import ItemEmbedding
from tslrec.models.layers import TransformerEncoder


class BERT4Rec(SequentialRecommender):
    objective = "masked"
    pads_are_inert = True

    def __init__(
        self, num_items: int, cfg: ModelConfig, item_embedding: ItemEmbedding | None = None
    ):
        super().__init__(num_items, cfg, item_embedding)
        self.mask_id = num_items + 1
        self.mask_vector = nn.Parameter(torch.randn(cfg.hidden_size) * 0.02)
        self.encoder = TransformerEncoder(cfg, causal=False)

    def encode(self, seqs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.cfg.max_len :]
        vectors = torch.cat([table, self.mask_vector.unsqueeze(0)])[seqs]
        return self.encoder(seqs, vectors)

    def prediction_input(self, history: torch.Tensor) -> torch.Tensor:
        """Drop the oldest column and append the mask token: the model fills in the next item."""
        mask = torch.full_like(history[:, :1], self.mask_id)
        return torch.cat([history[:, 1:], mask], dim=1)
