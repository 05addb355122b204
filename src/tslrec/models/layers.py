"""A pre-norm Transformer block on scaled_dot_product_attention, shared by SASRec and BERT4Rec."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
            nn.Dropout(dropout),
            nn.Linear(4 * hidden_size, hidden_size),
        )
        self.drop = nn.Dropout(dropout)

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
