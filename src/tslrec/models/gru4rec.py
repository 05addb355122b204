"""GRU4Rec (Hidasi et al., 2016): a recurrent encoder over the item sequence."""

from __future__ import annotations

import torch
from torch import nn

from tslrec.config import ModelConfig
from tslrec.models.base import SequentialRecommender
from tslrec.models.item_embedding import ItemEmbedding
from tslrec.models.layers import Dropout


class GRU4Rec(SequentialRecommender):
    objective = "causal"

    def __init__(
        self, num_items: int, cfg: ModelConfig, item_embedding: ItemEmbedding | None = None
    ):
        super().__init__(num_items, cfg, item_embedding)
        self.drop = Dropout(cfg.dropout)
        self.gru = nn.GRU(
            cfg.hidden_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True
        )
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def encode(self, seqs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.cfg.max_len :]
        hidden, _ = self.gru(self.drop(table[seqs]))
        return self.out(self.drop(hidden))
