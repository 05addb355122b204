"""The item tables a backbone can be enhanced with: TSLRec's, and the controls that share its
shape and its path into the model but not the LLM's contribution.

A gain over plain can come from the fusion adapter's extra parameters or from the k-means
clusters alone, not from the LLM; a gain is the LLM's only where the TSLRec table beats these:

* ``tslrec``: stage 2's table (``augment.features`` of the fine-tuned LLM's one-item states);
* ``llm-raw``: the same LLM and prompts without fine-tuning (what the LLM knows from text);
* ``random``: a seeded Gaussian table of the TSLRec table's shape, column means and spreads
  (the adapter's capacity, no information);
* ``categories``: each item's stage-1 k-means category as a one-hot row (the clusters, no LLM);
* ``instance``: the TSLRec table from instance-level SFT (one sample per training step).

Every table has N+1 rows in item-id order with row 0 (padding) zero; the pipeline
(`tslrec.pipeline.tslrec.item_table`) caches each beside the stage it comes from and sends it
through the same `ItemEmbedding` (``enhance.mode``) as TSLRec's.
"""

from __future__ import annotations

from typing import get_args

import torch

from tslrec.config import TableName

TABLES: tuple[str, ...] = get_args(TableName)
CONTROLS = TABLES[1:]


def random_table(like: torch.Tensor, seed: int) -> torch.Tensor:
    """Gaussian rows with `like`'s shape and per-column mean and std (rows 1..N); row 0 zero."""
    items = like[1:].float()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(items.shape, generator=generator)
    table = torch.zeros_like(like, dtype=torch.float32)
    table[1:] = items.mean(0) + noise * items.std(0)
    return table


def category_table(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N+1, K) one-hot of each item's category (labels[i] is item i's, labels[0] = -1 for
    padding); row 0 zero."""
    table = torch.zeros(len(labels), k)
    table[torch.arange(1, len(labels)), labels[1:].long()] = 1.0
    return table
