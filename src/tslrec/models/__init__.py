"""Sequential backbones behind one interface; `build_model` picks one by name."""

from __future__ import annotations

from tslrec.config import ModelConfig
from tslrec.models.base import SequentialRecommender
from tslrec.models.bert4rec import BERT4Rec
from tslrec.models.gru4rec import GRU4Rec
from tslrec.models.item_embedding import IdEmbedding, ItemEmbedding
from tslrec.models.sasrec import SASRec

BACKBONES: dict[str, type[SequentialRecommender]] = {
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "bert4rec": BERT4Rec,
}


def build_model(
    num_items: int, cfg: ModelConfig, item_embedding: ItemEmbedding | None = None
) -> SequentialRecommender:
    """The untrained backbone `cfg.name` (sasrec, gru4rec or bert4rec) for items 1..num_items.

    `item_embedding` is the item table it looks up and scores against: by default a fresh
    trainable id embedding; `build_item_embedding` makes an enhanced one from an external
    (N+1, D) table. The weights are drawn from torch's global generator: seed it first.
    """
    return BACKBONES[cfg.name](num_items, cfg, item_embedding)


__all__ = ["BACKBONES", "IdEmbedding", "ItemEmbedding", "SequentialRecommender", "build_model"]
