"""The Transformer that SASRec (causal) and BERT4Rec (bidirectional) share: pre-norm blocks on
scaled_dot_product_attention, and the encoder that stacks them over item + position embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tslrec.config import ModelConfig


class Dropout(nn.Module):
    """`nn.Dropout` with its mask drawn by `torch.rand`: the same distribution, but on a CPU
    `bernoulli_` costs about 2.4x as much, and dropout masks were a third of a SASRec step."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TransformerBlock(nn.Module):
    def __init__(
        self, hidden_size: int, num_heads: int, dropout: float, attention_dropout: bool = True
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attention_dropout = dropout if attention_dropout else 0.0
        self.norm1 = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(4 * hidden_size, hidden_size),
        )
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """`allowed` is a boolean (B, 1, T, T) mask: True where a query may attend to a key."""
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(h, dim=-1)
        q, k, v = (
            z.view(b, t, self.num_heads, h // self.num_heads).transpose(1, 2) for z in (q, k, v)
        )
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attention_dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, t, h)))
        return x + self.drop(self.ffn(self.norm2(x)))


def attention_mask(seqs: torch.Tensor, causal: bool) -> torch.Tensor:
    """Keys that are padding are hidden; every position may always see itself (no empty rows)."""
    t = seqs.size(1)
    allowed = (seqs != 0)[:, None, None, :].expand(-1, 1, t, -1)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=seqs.device).tril()
    return allowed | torch.eye(t, dtype=torch.bool, device=seqs.device)


class TransformerEncoder(nn.Module):
    """Item + position embeddings through a stack of blocks; `causal` decides what each sees."""

    def __init__(self, cfg: ModelConfig, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.position = nn.Embedding(cfg.max_len, cfg.hidden_size)
        nn.init.normal_(self.position.weight, std=0.02)
        self.drop = Dropout(cfg.dropout)
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
