"""Latent categories: k-means clusters of the pre-trained SRS item embeddings, and the user targets.

TSLRec needs no side information to define what a user "prefers": an item's category is its
cluster in the collaborative embedding space of a pre-trained sequential recommender, and a user's
target g_u is their normalised interaction frequency over those clusters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

from tslrec.config import CategoryConfig
from tslrec.errors import TslrecError
from tslrec.io import load_tensors, read_json, save_tensors, write_json
from tslrec.layout import CATEGORIES_META, CATEGORIES_TENSORS

N_INIT = 10  # fixed so a seed fully determines the clustering


@dataclass(frozen=True)
class LatentCategories:
    """``labels[i]`` is item i's category (``labels[0] = -1``: padding has none)."""

    labels: np.ndarray  # (N+1,) int64
    centroids: np.ndarray  # (K, d) float32, in the (possibly normalised) clustering space
    counts: np.ndarray  # (K,) int64 items per category
    normalize: bool
    seed: int

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def num_items(self) -> int:
        return int(self.labels.shape[0] - 1)

    def save(self, directory: str | Path) -> None:
        """Write the arrays as safetensors and the settings as JSON (no pickles)."""
        directory = Path(directory)
        save_tensors(
            directory / CATEGORIES_TENSORS,
            {
                "labels": torch.from_numpy(self.labels.astype(np.int64)),
                "centroids": torch.from_numpy(self.centroids.astype(np.float32)),
                "counts": torch.from_numpy(self.counts.astype(np.int64)),
            },
        )
        write_json(
            directory / CATEGORIES_META,
            {
                "k": self.k,
                "num_items": self.num_items,
                "normalize": self.normalize,
                "seed": self.seed,
            },
        )

    @classmethod
    def load(cls, directory: str | Path) -> LatentCategories:
        directory = Path(directory)
        if not all((directory / name).is_file() for name in (CATEGORIES_TENSORS, CATEGORIES_META)):
            raise TslrecError(f"{directory}: no saved latent categories (run the categories step)")
        t = load_tensors(directory / CATEGORIES_TENSORS)
        meta = read_json(directory / CATEGORIES_META)
        return cls(
            labels=t["labels"].numpy(),
            centroids=t["centroids"].numpy(),
            counts=t["counts"].numpy(),
            normalize=bool(meta["normalize"]),
            seed=int(meta["seed"]),
        )


def fit_categories(item_embeddings: np.ndarray, cfg: CategoryConfig) -> LatentCategories:
    """Cluster the item embeddings (rows = items 1..N, padding excluded) into ``cfg.k`` categories.

    Normalising first (``cfg.normalize``) clusters by direction, matching dot-product scoring.
    """
    x = np.asarray(item_embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise TslrecError(f"item embeddings must be a non-empty (N, d) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise TslrecError("item embeddings contain NaN or infinite values")
    if cfg.k > x.shape[0]:
        raise TslrecError(f"categories.k = {cfg.k} exceeds the number of items ({x.shape[0]})")
    if cfg.normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = KMeans(n_clusters=cfg.k, n_init=N_INIT, random_state=cfg.seed).fit(x)
    item_labels = km.labels_.astype(np.int64)
    labels = np.concatenate([np.array([-1], dtype=np.int64), item_labels])
    return LatentCategories(
        labels=labels,
        centroids=km.cluster_centers_.astype(np.float32),
        counts=np.bincount(item_labels, minlength=cfg.k).astype(np.int64),
        normalize=cfg.normalize,
        seed=cfg.seed,
    )


def preference_target(
    sequence: Sequence[int] | np.ndarray, labels: np.ndarray, k: int
) -> np.ndarray:
    """g_u for one user: the share of their interactions in each category (zeros if empty)."""
    items = np.asarray(sequence, dtype=np.int64)
    items = items[items > 0]
    if items.size == 0:
        return np.zeros(k, dtype=np.float32)
    if int(items.max()) >= labels.shape[0]:
        raise TslrecError(
            f"item id {int(items.max())} is beyond the {labels.shape[0] - 1} categorised items"
        )
    cats = labels[items]
    if (cats < 0).any():
        raise TslrecError(
            "a sequence contains an item with no category (padding id or unknown item)"
        )
    counts = np.bincount(cats, minlength=k).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)
