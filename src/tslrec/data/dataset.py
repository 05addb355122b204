"""The prepared dataset as the rest of the package sees it: per-user chronological item sequences.

Split views are derived, never stored twice: `train_sequences()` holds all but each user's last
two items, validation predicts the second-to-last from the training prefix, and test predicts
the last from the training prefix plus the validation item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from tslrec.errors import DataError
from tslrec.io import read_json

MANIFEST = "manifest.json"
Split = Literal["valid", "test"]


@dataclass
class SequenceDataset:
    sequences: list[np.ndarray]
    users: list[str]
    items: list[str | None]
    titles: list[str | None]
    attributes: list[str | None]
    valid_negatives: np.ndarray
    test_negatives: np.ndarray
    manifest: dict
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> SequenceDataset:
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise DataError(
                f"not a prepared dataset (no {MANIFEST}); run `tslrec data prepare`", path=path
            )
        inter = _read_table(path / "interactions.parquet")
        users = _read_table(path / "users.parquet").sort("user_idx")
        items = _read_table(path / "items.parquet").sort("item_idx")
        negatives = _read_table(path / "negatives.parquet").sort("user_idx")
        item_idx = inter["item_idx"].to_numpy()
        bounds = np.cumsum(inter.group_by("user_idx", maintain_order=True).len()["len"].to_numpy())
        sequences = np.split(item_idx, bounds[:-1])
        return cls(
            sequences=sequences,
            users=users["user"].to_list(),
            items=[None, *items["item"].to_list()],
            titles=[None, *items["title"].to_list()],
            attributes=[None, *items["attributes"].to_list()],
            valid_negatives=np.array(negatives["valid_negatives"].to_list(), dtype=np.int64),
            test_negatives=np.array(negatives["test_negatives"].to_list(), dtype=np.int64),
            manifest=read_json(path / MANIFEST),
            path=path,
        )

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_items(self) -> int:
        """N: real items are 1..N, 0 is padding."""
        return len(self.items) - 1

    @property
    def has_text(self) -> bool:
        return any(t is not None for t in self.titles)

    def train_sequences(self) -> list[np.ndarray]:
        return [s[:-2] for s in self.sequences]

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Training interactions per item id (index 0, padding, counts 0): an item's popularity."""
        counts = np.bincount(np.concatenate(self.train_sequences()), minlength=self.num_items + 1)
        counts[0] = 0
        return counts

    def history(self, user: int, split: Split) -> np.ndarray:
        """Items the model may see when predicting the split's target."""
        return self.sequences[user][:-2] if split == "valid" else self.sequences[user][:-1]

    def target(self, user: int, split: Split) -> int:
        return int(self.sequences[user][-2] if split == "valid" else self.sequences[user][-1])

    def negatives(self, split: Split) -> np.ndarray:
        return self.valid_negatives if split == "valid" else self.test_negatives

    @cached_property
    def _user_lookup(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.users)}

    @cached_property
    def _item_lookup(self) -> dict[str, int]:
        return {str(it): i for i, it in enumerate(self.items) if i > 0}

    def user_index(self, user_id: str) -> int:
        if user_id not in self._user_lookup:
            raise DataError(f"unknown user id '{user_id}'", path=self.path)
        return self._user_lookup[user_id]

    def item_index(self, item_id: str) -> int:
        if item_id not in self._item_lookup:
            raise DataError(f"unknown item id '{item_id}'", path=self.path)
        return self._item_lookup[item_id]

    def item_label(self, item: int) -> str:
        return self.titles[item] or str(self.items[item])

    def stats(self) -> dict:
        return self.manifest["stats"]

    def histories(self, users: Sequence[int], split: Split, max_len: int) -> np.ndarray:
        """Left-padded model inputs for predicting each user's validation or test item."""
        return left_pad([self.history(u, split) for u in users], max_len)


def left_pad(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Keep the last `length` items of each sequence and pad on the left with 0."""
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-length:]
        if len(tail):
            out[row, length - len(tail) :] = tail
    return out


def _read_table(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(
            f"not a readable Parquet table ({err}); the prepared dataset was damaged: delete "
            f"{path.parent} and run `tslrec data prepare` again",
            path=path,
        ) from None
