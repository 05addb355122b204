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
from typing import Any, Literal

import numpy as np
import polars as pl

from tslrec.errors import DataError
from tslrec.io import read_json
from tslrec.layout import INTERACTIONS, ITEMS, MANIFEST, NEGATIVES, USERS

Split = Literal["valid", "test"]


@dataclass
class SequenceDataset:
    """Every user's chronological item sequence, with the id maps and each user's negatives.

    Ids are contiguous: user `u` (0..U-1) is `users[u]`, item `i` (1..N; 0 is padding) is
    `items[i]`, with `titles[i]` and `attributes[i]` where the data has text. `sequences[u]`
    holds the whole sequence; the leave-one-out split is derived from it (`train_sequences`,
    `history`, `target`). Build one with `from_frame` (a DataFrame, in memory), `from_config`
    (a config's `data` section) or `load` (a directory `tslrec data prepare` wrote).
    """

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
        """A dataset that `prepare_dataset` (`tslrec data prepare`) wrote to `path`."""
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise DataError(
                f"not a prepared dataset (no {MANIFEST}); run `tslrec data prepare`", path=path
            )
        return cls.from_tables(
            _read_table(path / INTERACTIONS),
            _read_table(path / USERS),
            _read_table(path / ITEMS),
            _read_table(path / NEGATIVES),
            read_json(path / MANIFEST),
            path,
        )

    @classmethod
    def from_tables(
        cls,
        inter: pl.DataFrame,
        users: pl.DataFrame,
        items: pl.DataFrame,
        negatives: pl.DataFrame,
        manifest: dict,
        path: Path | None = None,
    ) -> SequenceDataset:
        """From the prepared tables, as written to disk or held in memory (`PreparedTables`)."""
        users, items = users.sort("user_idx"), items.sort("item_idx")
        negatives = negatives.sort("user_idx")
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
            manifest=manifest,
            path=path,
        )

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        user: str = "user_id",
        item: str = "item_id",
        timestamp: str = "timestamp",
        rating: str | None = None,
        items: Any = None,
        title: str | None = None,
        attributes: Sequence[str] = (),
        name: str = "dataframe",
        **settings: Any,
    ) -> SequenceDataset:
        """A dataset from a pandas or polars DataFrame of interactions, one row each; in memory.

        `user`, `item` and `timestamp` (and `rating`) name the frame's columns; timestamps are
        numbers or datetimes. `items` is an optional frame of item text: its `item` column, a
        `title` column (default "title" when present) and `attributes` columns. `settings` are
        the `data` section's (`k_core=5`, `rating_threshold`, `deduplicate`, `negatives_seed`,
        `num_sampled_negatives`): the frame is filtered, id-mapped and split exactly as a CSV
        file of the same rows would be by `tslrec data prepare`, but nothing is written.
        """
        from tslrec.config import config_from_dict
        from tslrec.data.prepare import prepare_in_memory
        from tslrec.data.readers import as_polars, raw_from_frame

        columns = {"user": user, "item": item, "timestamp": timestamp, "rating": rating}
        item_columns: dict[str, Any] = {"item": item, "attributes": list(attributes)}
        if title is not None:
            item_columns["title"] = title
        data = {"name": name, "format": "table", "columns": columns, "item_columns": item_columns}
        cfg = config_from_dict({"data": {**data, **settings}}, "Dataset.from_frame").data
        texts = as_polars(items, "items") if items is not None else None
        return prepare_in_memory(cfg, raw_from_frame(as_polars(frame), cfg, texts))

    @classmethod
    def from_config(
        cls,
        config: Any = None,
        overrides: list[str] | None = None,
        *,
        path: str | Path | None = None,
    ) -> SequenceDataset:
        """The dataset a config's `data` section describes: a `Config`, a `DataConfig`, or the
        path of a YAML config (with KEY=VALUE `overrides`, as `--set` takes them).

        Built in memory unless `path` is given: then it is prepared into that directory, or
        reused from it when inputs and settings are unchanged, as `tslrec data prepare` does
        (which uses `<output_dir>/data`).
        """
        from tslrec.config import Config, DataConfig, load_config
        from tslrec.data.prepare import prepare_dataset, prepare_in_memory

        if isinstance(config, Config):
            cfg = config.data
        elif isinstance(config, DataConfig):
            cfg = config
        else:
            cfg = load_config(config, overrides).data
        return prepare_dataset(cfg, path) if path is not None else prepare_in_memory(cfg)

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


Dataset = SequenceDataset  # the short name of the public face: tslrec.Dataset.from_frame(...)


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
