"""The interface every sequential backbone shares: encode, score all items, expose item embeddings.

Sequences are left-padded with 0, so the most recent item is always the last column. Causal
backbones (SASRec, GRU4Rec) predict the next item at every position; masked ones (BERT4Rec)
predict items hidden behind a mask token.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from tslrec.config import ModelConfig
from tslrec.models.item_embedding import IdEmbedding, ItemEmbedding


def fit_width(seqs: torch.Tensor, width: int) -> torch.Tensor:
    """Keep the last `width` columns of left-padded sequences, padding on the left if narrower."""
    if seqs.size(1) >= width:
        return seqs[:, -width:]
    return torch.nn.functional.pad(seqs, (width - seqs.size(1), 0))


class SequentialRecommender(nn.Module):
    """A next-item model over left-padded sequences of internal item ids (1..N; 0 = padding).

    A backbone implements `encode`; the rest is shared: `score` gives every item's score after
    a history, `recommend` the top k (seen items skipped), `item_embeddings` the learned table.
    Its `item_embedding` (`models.item_embedding`) supplies the (N+1, H) table used both for
    the input lookup and for scoring: plain ids, or an enhanced (LLM) table. Build one with
    `build_model`; `tslrec.Recommender` wraps one with id maps, training and saving.
    """

    objective: ClassVar[Literal["causal", "masked"]] = "causal"
    # True when leading padding columns change no real position's output (attention hides them,
    # positions count from the right), so a training batch may be cut to its longest sequence
    pads_are_inert: ClassVar[bool] = False

    def __init__(
        self, num_items: int, cfg: ModelConfig, item_embedding: ItemEmbedding | None = None
    ):
        super().__init__()
        self.num_items, self.cfg = num_items, cfg
        self.item_embedding = item_embedding or IdEmbedding(num_items, cfg.hidden_size)
        if self.item_embedding.hidden_size != cfg.hidden_size:
            raise ValueError("the item embedding's hidden size must match model.hidden_size")

    def encode(self, seqs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) hidden states, using the given (N+1, H) item table."""
        raise NotImplementedError

    def forward(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states and the item table they are scored against (one call, so DDP sees it)."""
        table = self.item_embedding.table()
        return self.encode(seqs, table), table

    def prediction_input(self, history: torch.Tensor) -> torch.Tensor:
        """How a left-padded history is fed when predicting the item that comes next."""
        return history

    def score(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of all items (B, N+1) for the item following each left-padded history.

        Histories of any width are cut or left-padded to `max_len` first, so the positions the
        model sees never depend on how wide the caller's batch happened to be.
        """
        history = fit_width(history, self.cfg.max_len)
        table = self.item_embedding.table()
        hidden = self.encode(self.prediction_input(history), table)[:, -1]
        return hidden @ table.T

    @torch.no_grad()
    def recommend(
        self, history: torch.Tensor, k: int, exclude_seen: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (item ids, scores) per left-padded history; seen items are skipped by default.

        Pass whole histories, however long: the model reads only the last `max_len` items, but
        every item given is excluded, so a user is not offered what they saw long ago.
        """
        scores = self.score(history).float()
        scores[:, 0] = float("-inf")
        if exclude_seen:
            scores = scores.scatter(1, history, float("-inf"))
        top = scores.topk(min(k, self.num_items), dim=1)
        return top.indices, top.values

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """The learned (N, H) item matrix, padding row excluded: what stage 0 hands to k-means."""
        return self.item_embedding.table()[1:].detach().cpu().clone()
