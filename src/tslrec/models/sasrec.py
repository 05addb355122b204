"""SASRec (Kang & McAuley, 2018): a causal Transformer over the item sequence."""

from __future__ import annotations

import torch
from torch import nn

from tslrec.config import ModelConfig
from tslrec.models.base import SequentialRecommender
from tslrec.models.item_embedding import ItemEmbedding
from tslrec.models.layers import TransformerBlock, attention_mask


class TransformerEncoder(nn.Module):
    """Item + position embeddings through a stack of blocks; `causal` decides what each sees."""

    def __init__(self, cfg: ModelConfig, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.position = nn.Embedding(cfg.max_len, cfg.hidden_size)
        nn.init.normal_(self.position.weight, std=0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.hidden_size, cfg.num_heads, cfg.dropout, cfg.attention_dropout)
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, seqs: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        t = seqs.size(1)
        # counted back from the most recent item, which always has position max_len - 1
        positions = torch.arange(self.position.num_embeddings - t, self.position.num_embeddings)
        positions = positions.to(seqs.device)
        x = self.drop(item_vectors + self.position(positions)) * (seqs != 0).unsqueeze(-1)
        allowed = attention_mask(seqs, self.causal)
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)


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
