"""SASRec (Kang & McAuley, 2018): a causal Transformer over the item sequence."""

from __future__ import annotations

import torch

from tslrec.config import ModelConfig
from tslrec.models.base import SequentialRecommender
from tslrec.models.item_embedding import ItemEmbedding
from tslrec.models.layers import TransformerEncoder


class SASRec(SequentialRecommender):
    objective = "causal"
    pads_are_inert = True

    def __init__(
        self, num_items: int, cfg: ModelConfig, item_embedding: ItemEmbedding | None = None
    ):
        super().__init__(num_items, cfg, item_embedding)
        self.encoder = TransformerEncoder(cfg, causal=True)

    def encode(self, seqs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.encoder(seqs[:, -self.cfg.max_len :], table[seqs[:, -self.cfg.max_len :]])
