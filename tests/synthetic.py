"""Small, fully predictable datasets the tests build themselves.

Every user walks the catalogue in a fixed cycle (item k is always followed by item k+1) from a
random start, so the right next item is known and a working model must learn it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tslrec.config import Config, config_from_dict


def cyclic_sequences(num_users: int = 60, num_items: int = 20, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(num_users):
        start, length = rng.integers(num_items), rng.integers(8, 16)
        seqs.append([int((start + t) % num_items) + 1 for t in range(length)])
    return seqs


def write_interactions_csv(path: Path, sequences: list[list[int]]) -> Path:
    rows = ["user,item,ts"]
    for u, seq in enumerate(sequences):
        rows += [f"u{u},i{item},{1000 + t}" for t, item in enumerate(seq)]
    path.write_text("\n".join(rows) + "\n")
    return path


def cyclic_frame(sequences: list[list[int]] | None = None) -> pl.DataFrame:
    """The rows `write_interactions_csv` writes for the sequences, as a polars DataFrame."""
    rows = [
        (f"u{u}", f"i{item}", 1000 + t)
        for u, seq in enumerate(sequences or cyclic_sequences())
        for t, item in enumerate(seq)
    ]
    return pl.DataFrame(rows, schema=["user", "item", "ts"], orient="row")


def tiny_config(tmp_path: Path, csv: Path, **sections: dict) -> Config:
    raw = {
        "output_dir": str(tmp_path / "run"),
        "data": {
            "name": "cyclic",
            "format": "table",
            "path": str(csv),
            "columns": {"user": "user", "item": "item", "timestamp": "ts"},
            "k_core": 3,
            "num_sampled_negatives": 10,
        },
        "model": {
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 1,
            "max_len": 10,
            "dropout": 0.1,
        },
        "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "patience": 50, "num_threads": 1},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw)
