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
    return BACKBONES[cfg.name](num_items, cfg, item_embedding)


__all__ = ["BACKBONES", "IdEmbedding", "ItemEmbedding", "SequentialRecommender", "build_model"]
