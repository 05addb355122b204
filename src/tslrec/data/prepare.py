"""Raw interactions -> a prepared, split, id-mapped dataset on disk that every later stage reuses.

Preprocessing is deterministic and recorded in the manifest: rating threshold, duplicate removal
(earliest kept), iterative k-core on users and items, chronological order with the original row
order as the tie-break, contiguous ids (items 1..N, 0 = padding; users 0..U-1), and the
chronological leave-one-out split (last item = test, second-to-last = validation).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tslrec.config import DataConfig
from tslrec.data.dataset import SequenceDataset
from tslrec.data.readers import BUILTINS, RawData, load_raw
from tslrec.errors import DataError
from tslrec.io import atomic_dir, read_json, sweep_leftovers, write_json
from tslrec.keys import content_key, file_key
from tslrec.layout import INTERACTIONS, ITEMS, MANIFEST, NEGATIVES, USERS

FORMAT_VERSION = 1


def input_fingerprint(cfg: DataConfig) -> str:
    """Key of the settings and the input bytes: a prepared dataset is reused only if both match."""
    parts: list[object] = [cfg.model_dump(mode="json"), f"format-{FORMAT_VERSION}"]
    if cfg.format == "builtin" and cfg.name in BUILTINS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(importlib.metadata.version(BUILTINS[cfg.name].distribution))
    for path in (cfg.path, cfg.item_path):
        if path is not None and Path(path).is_file():
            parts.append(file_key(path))
    return content_key(*parts, length=64)


def _filter_interactions(df: pl.DataFrame, cfg: DataConfig, source: str) -> pl.DataFrame:
    df = df.with_row_index("row")
    if cfg.rating_threshold is not None:
        if df["rating"].null_count() == df.height:
            raise DataError(
                "rating_threshold is set but the data has no rating column", path=source
            )
        df = df.filter(pl.col("rating") >= cfg.rating_threshold)
    df = df.sort(["user", "timestamp", "row"])
    if cfg.deduplicate:
        df = df.unique(subset=["user", "item"], keep="first", maintain_order=True)
    df = _k_core(df, cfg.k_core)
    if df.height == 0:
        raise DataError(
            f"no interactions left after the rating threshold and {cfg.k_core}-core filtering; "
            "lower data.k_core or data.rating_threshold",
            path=source,
        )
    return df


def _k_core(df: pl.DataFrame, k: int) -> pl.DataFrame:
    """Iterate until every user and every item has at least k interactions (a fixed point)."""
    if k <= 1:
        return df
    while True:
        kept = df.filter((pl.len().over("user") >= k) & (pl.len().over("item") >= k))
        if kept.height == df.height:
            return kept
        df = kept


def _id_maps(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    users = (
        df.select(pl.col("user").unique().sort())
        .with_row_index("user_idx")
        .with_columns(pl.col("user_idx").cast(pl.Int64))
    )
    items = (
        df.select(pl.col("item").unique().sort())
        .with_row_index("item_idx", offset=1)
        .with_columns(pl.col("item_idx").cast(pl.Int64))
    )
    return users, items


def _item_table(items: pl.DataFrame, raw: RawData) -> pl.DataFrame:
    if raw.items is None:
        return items.with_columns(
            pl.lit(None, pl.Utf8).alias("title"), pl.lit(None, pl.Utf8).alias("attributes")
        )
    text = raw.items.unique(subset=["item"], keep="first")
    return items.join(text, on="item", how="left").sort("item_idx")


def _sequence_stats(lengths: np.ndarray, num_items: int) -> dict[str, float | int]:
    num_users = int(lengths.size)
    total = int(lengths.sum())
    return {
        "users": num_users,
        "items": num_items,
        "interactions": total,
        "density": total / (num_users * num_items),
        "seq_len_min": int(lengths.min()),
        "seq_len_mean": float(lengths.mean()),
        "seq_len_median": float(np.median(lengths)),
        "seq_len_p90": float(np.percentile(lengths, 90)),
        "seq_len_max": int(lengths.max()),
    }


def _sample_negatives(
    interactions: pl.DataFrame, num_users: int, num_items: int, count: int, seed: int
) -> pl.DataFrame:
    """Draw never-interacted items per user once, so every model ranks the same candidates.

    A catalogue too small for `count` negatives per user gets as many as every user can have
    (possibly none, in which case the sampled protocol refuses to run).
    """
    rng = np.random.default_rng(seed)
    seen = interactions.group_by("user_idx").agg("item_idx").sort("user_idx")["item_idx"].to_list()
    count = max(0, min(count, num_items - max(len(set(items)) for items in seen)))
    valid, test = [], []
    for items in seen:
        forbidden = np.zeros(num_items + 1, dtype=bool)
        forbidden[0] = True
        forbidden[items] = True
        pool = np.flatnonzero(~forbidden)
        valid.append(rng.choice(pool, size=count, replace=False).tolist())
        test.append(rng.choice(pool, size=count, replace=False).tolist())
    return pl.DataFrame(
        {"user_idx": np.arange(num_users), "valid_negatives": valid, "test_negatives": test}
    )


@dataclass(frozen=True)
class PreparedTables:
    """A prepared dataset before it is written: the four tables and the manifest."""

    interactions: pl.DataFrame  # user_idx, item_idx, timestamp; by user, then time, then file row
    users: pl.DataFrame  # user_idx, user
    items: pl.DataFrame  # item_idx, item, title, attributes
    negatives: pl.DataFrame  # user_idx, valid_negatives, test_negatives
    manifest: dict

    def dataset(self, path: Path | None = None) -> SequenceDataset:
        return SequenceDataset.from_tables(
            self.interactions, self.users, self.items, self.negatives, self.manifest, path
        )


def prepare_tables(raw: RawData, cfg: DataConfig, fingerprint: str) -> PreparedTables:
    """Filter, id-map and split raw interactions, in memory; `fingerprint` goes to the manifest."""
    df = _filter_interactions(raw.interactions, cfg, raw.source)
    users, items = _id_maps(df)
    interactions = (
        df.join(users, on="user")
        .join(items, on="item")
        .sort(["user_idx", "timestamp", "row"])
        .select("user_idx", "item_idx", "timestamp")
    )
    lengths = interactions.group_by("user_idx").len().sort("user_idx")["len"].to_numpy()
    if lengths.min() < 3:
        raise DataError(
            "every user needs at least 3 interactions for the leave-one-out split; "
            "set data.k_core to 3 or more",
            path=raw.source,
        )
    negatives = _sample_negatives(
        interactions, users.height, items.height, cfg.num_sampled_negatives, cfg.negatives_seed
    )
    content = content_key(
        *(interactions[column].to_numpy().tobytes() for column in ("user_idx", "item_idx")),
        *(
            np.array(negatives[column].to_list(), dtype=np.int64).tobytes()
            for column in ("valid_negatives", "test_negatives")
        ),
        length=64,
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "source": raw.source,
        "input_fingerprint": fingerprint,
        "content_hash": content,
        "settings": cfg.model_dump(mode="json"),
        "split": "chronological leave-one-out (last = test, second-to-last = validation)",
        "raw_interactions": raw.interactions.height,
        "stats": _sequence_stats(lengths, items.height),
        "sampled_negatives_per_user": len(negatives["test_negatives"][0]),
    }
    return PreparedTables(interactions, users, _item_table(items, raw), negatives, manifest)


def prepare_dataset(
    cfg: DataConfig, out_dir: str | Path, *, force: bool = False
) -> SequenceDataset:
    """Prepare (or reuse, when inputs and settings are unchanged) the dataset in `out_dir`."""
    out_dir = Path(out_dir)
    sweep_leftovers(out_dir.parent)  # a half-written dataset of a killed run
    fingerprint = input_fingerprint(cfg)
    manifest_path = out_dir / MANIFEST
    reusable = not force and manifest_path.is_file()
    if reusable and read_json(manifest_path).get("input_fingerprint") == fingerprint:
        return SequenceDataset.load(out_dir)
    tables = prepare_tables(load_raw(cfg), cfg, fingerprint)
    with atomic_dir(out_dir) as tmp:
        tables.interactions.write_parquet(tmp / INTERACTIONS)
        tables.users.write_parquet(tmp / USERS)
        tables.items.write_parquet(tmp / ITEMS)
        tables.negatives.write_parquet(tmp / NEGATIVES)
        write_json(tmp / MANIFEST, tables.manifest)
    return SequenceDataset.load(out_dir)


def prepare_in_memory(cfg: DataConfig, raw: RawData | None = None) -> SequenceDataset:
    """The dataset `prepare_dataset` would write for `cfg`, built in memory; nothing is written.

    `raw` is data already read (a DataFrame's, see `readers.raw_from_frame`); by default the
    files `cfg` names are read. The manifest's `input_fingerprint` covers the settings and those
    files, not an in-memory frame's rows (its `content_hash` covers the prepared data).
    """
    raw = raw if raw is not None else load_raw(cfg)
    return prepare_tables(raw, cfg, input_fingerprint(cfg)).dataset()
