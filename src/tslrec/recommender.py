"""The short way in: a recommender that owns its config and id maps, from DataFrame to top-k.

    dataset = tslrec.Dataset.from_frame(df, user="user_id", item="item_id", timestamp="ts")
    model = tslrec.Recommender("sasrec", epochs=20).fit(dataset)
    model.recommend(["u1", "u2"], k=10)  # a DataFrame: user, rank, item, title, score

It is a thin layer over what the pipeline uses: `build_model`, `enhanced_item_embedding` for an
enhanced (TSLRec) item table, the trainer's `fit`, the model's `recommend`, and the checkpoint
format of `tslrec train`. Nothing is written to disk unless `save` is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from accelerate.utils import set_seed

from tslrec.config import (
    Config,
    DataConfig,
    EnhanceConfig,
    ModelConfig,
    TrainConfig,
    check_backbone,
    config_from_dict,
    load_config,
)
from tslrec.data.dataset import SequenceDataset, left_pad
from tslrec.errors import ConfigError, TslrecError
from tslrec.evaluation.evaluator import check_protocol, evaluate
from tslrec.io import atomic_dir, load_tensors, read_json, save_tensors, write_json
from tslrec.layout import RECOMMENDER_FACE, RECOMMENDER_HISTORIES
from tslrec.models import SequentialRecommender, build_model
from tslrec.models.item_embedding import enhanced_item_embedding
from tslrec.training.checkpoint import load_model, write_model_files
from tslrec.training.trainer import TrainResult, fit

# the `enhance` settings that shape how a given item table enters the model
_ENHANCE_KEYS = ("mode", "adapter_start")
_BATCH = 256  # users scored at once by `recommend`


class Recommender:
    """A sequential recommender on external ids: `fit(dataset)`, `recommend`, `save`, `load`.

    `backbone` is sasrec, gru4rec or bert4rec (default: the config's model, else sasrec).
    `config` is a `Config` or a YAML path whose `model`, `train` and `eval` sections (and its
    `per_backbone` settings for this backbone) are the starting point; `settings` override them
    by field name: any `model` or `train` key (`hidden_size=64`, `epochs=20`, `lr=0.001`), the
    `enhance` keys `mode` and `adapter_start`, or `eval={...}` for the evaluation section.

    `item_table` makes it the enhanced model: an (N+1, D) tensor, row i for item id i of the
    dataset it was made on (row 0 padding), or the path of a stage-2 `item_embeddings.safetensors`
    (a TSLRec table, or one of its controls); it enters the model by `mode` (init, adapter or
    fusion), as in `tslrec run`. The same config and seed give the same model as `tslrec train`
    (plain) or the pipeline's enhanced run.
    """

    def __init__(
        self,
        backbone: str | None = None,
        *,
        config: Config | str | Path | None = None,
        item_table: torch.Tensor | str | Path | None = None,
        progress: bool = True,
        **settings: Any,
    ) -> None:
        if item_table is None and (given := [key for key in _ENHANCE_KEYS if key in settings]):
            raise ConfigError(f"Recommender: {given[0]} applies to an item_table only")
        self.config = _resolve_config(backbone, config, settings)
        self.item_table = _load_table(item_table) if item_table is not None else None
        self.progress = progress
        self.model: SequentialRecommender | None = None
        self.dataset: SequenceDataset | None = None
        self.result: TrainResult | None = None  # the last `fit`'s epochs and timings
        self._meta: dict | None = None  # the checkpoint's extras: an enhanced model's spec

    @classmethod
    def from_model(
        cls,
        model: SequentialRecommender,
        dataset: SequenceDataset,
        config: Config,
        meta: dict | None = None,
    ) -> Recommender:
        """Wrap a model already trained on `dataset` under `config` (e.g. the one `tslrec
        train` finished); `meta` is its checkpoint's `model.json` extras, which an enhanced
        model needs (`item_embedding`) to be saved and loaded again."""
        face = cls(model.cfg.name, config=config, progress=False)
        face.model, face.dataset = model.eval(), dataset
        face._meta = meta
        return face

    # --- training -----------------------------------------------------------------------

    def fit(self, dataset: SequenceDataset) -> Recommender:
        """Train on `dataset` with early stopping on validation NDCG@10; returns `self`.

        Trains in memory (nothing is written; an interrupted fit starts over), keeping the best
        epoch's weights. The epochs and timings are in `self.result`.
        """
        cfg = self.config
        check_protocol(dataset, cfg.eval)  # before any epoch, as `tslrec train` does
        embedding, meta = None, None
        if self.item_table is not None:
            table = self.item_table
            if table.size(0) != dataset.num_items + 1:
                raise TslrecError(
                    f"the item table has {table.size(0)} rows; this dataset needs "
                    f"{dataset.num_items + 1} (one per item id, row 0 padding): "
                    "was it made on another dataset?"
                )
            set_seed(cfg.train.seed)
            embedding, spec = enhanced_item_embedding(
                cfg.enhance.mode,
                table,
                cfg.model.hidden_size,
                cfg.model.dropout,
                cfg.enhance.adapter_start,
            )
            meta = {"item_embedding": spec}
        set_seed(cfg.train.seed)
        model = build_model(dataset.num_items, cfg.model, embedding)
        self.result = fit(
            model, dataset, cfg.train, cfg.eval, None, meta=meta, progress=self.progress
        )
        self.model, self.dataset, self._meta = model.eval(), dataset, meta
        self.config = cfg.model_copy(update={"data": _data_config(dataset)})
        return self

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Ranking metrics on the fitted dataset's `valid` or `test` split (`eval` settings).

        A loaded recommender has its users' sequences but not their sampled negatives: it
        scores full ranking only.
        """
        model, dataset = self._fitted()
        if split not in ("valid", "test"):
            raise TslrecError(f"split must be 'valid' or 'test', got '{split}'")
        if self.config.eval.protocol == "sampled" and dataset.test_negatives.shape[1] == 0:
            raise TslrecError(
                "eval.protocol 'sampled': a loaded recommender keeps no sampled negatives; "
                "evaluate it with eval={'protocol': 'full'}, or fit it again"
            )
        return evaluate(model, dataset, split, self.config.eval).metrics  # type: ignore[arg-type]

    # --- recommending -------------------------------------------------------------------

    def recommend(
        self,
        users: str | Sequence[str] | None = None,
        k: int = 10,
        *,
        sequences: Sequence[Sequence[str]] | None = None,
        exclude_seen: bool = True,
    ) -> pl.DataFrame:
        """Top-k items for known users (their whole sequences), or for raw item sequences.

        Give `users` (one id or several) or `sequences` (lists of item ids, oldest first: new
        users). Returns one row per recommendation: `user` (or `sequence`, its position in the
        list), `rank` (1 = best), `item` (the external id), `title` (null without text) and
        `score`. The model reads the last `max_len` items of a history, and every item in it is
        skipped (`exclude_seen`), so fewer than k rows come back when few items are left.
        """
        model, dataset = self._fitted()
        if (users is None) == (sequences is None):
            raise TslrecError("give exactly one of users or sequences")
        if k < 1:
            raise TslrecError(f"k must be at least 1, got {k}")
        if users is not None:
            keys: list = [users] if isinstance(users, str) else [str(u) for u in users]
            histories = [dataset.sequences[dataset.user_index(u)] for u in keys]
            column = "user"
        else:
            histories = [
                np.array([dataset.item_index(str(i)) for i in seq], dtype=np.int64)
                for seq in sequences  # type: ignore[union-attr]
            ]
            keys, column = list(range(len(histories))), "sequence"
        rows: dict[str, list] = {column: [], "rank": [], "item": [], "title": [], "score": []}
        device = next(model.parameters()).device
        model.eval()
        for start in range(0, len(histories), _BATCH):
            batch = histories[start : start + _BATCH]
            width = max(1, *(len(h) for h in batch))  # every item, so that all are excluded
            inputs = torch.from_numpy(left_pad(batch, width)).to(device)
            items, scores = model.recommend(inputs, k, exclude_seen)
            for key, row_items, row_scores in zip(
                keys[start : start + _BATCH], items.tolist(), scores.tolist(), strict=True
            ):
                ranked = zip(row_items, row_scores, strict=True)
                kept = [(i, s) for i, s in ranked if s != float("-inf")]  # seen: never offered
                for rank, (item, score) in enumerate(kept, 1):
                    rows[column].append(key)
                    rows["rank"].append(rank)
                    rows["item"].append(str(dataset.items[item]))
                    rows["title"].append(dataset.titles[item])
                    rows["score"].append(score)
        schema = {
            column: pl.String if column == "user" else pl.Int64,
            "rank": pl.Int64,
            "item": pl.String,
            "title": pl.String,
            "score": pl.Float64,
        }
        return pl.DataFrame(rows, schema=schema)

    # --- saving and loading -------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted recommender to directory `path`: a new one, or a saved recommender,
        which is replaced whole (any other non-empty directory is refused, never emptied).

        `model.safetensors` + `model.json` are the checkpoint format of `tslrec train` (an
        enhanced model's frozen item table is among its tensors); `recommender.json` holds the
        config and the id maps, `histories.safetensors` the users' sequences (for `recommend`
        on known users). Safetensors and JSON only: loading runs no code.
        """
        model, dataset = self._fitted()
        path = Path(path)
        if path.is_dir() and any(path.iterdir()) and not (path / RECOMMENDER_FACE).is_file():
            raise TslrecError(
                f"{path}: a directory that holds no saved recommender (no {RECOMMENDER_FACE}); "
                "save to a new or empty directory"
            )
        lengths = np.array([len(s) for s in dataset.sequences], dtype=np.int64)
        flat = np.concatenate(dataset.sequences).astype(np.int64)
        face = {
            "config": self.config.model_dump(mode="json"),
            "users": dataset.users,
            "items": dataset.items,
            "titles": dataset.titles,
            "attributes": dataset.attributes,
            "manifest": dataset.manifest,
        }
        with atomic_dir(path) as tmp:
            write_model_files(model, tmp, self._meta)
            tensors = {"items": torch.from_numpy(flat), "lengths": torch.from_numpy(lengths)}
            save_tensors(tmp / RECOMMENDER_HISTORIES, tensors)
            write_json(tmp / RECOMMENDER_FACE, face)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """A recommender `save` wrote, ready to `recommend` (on the CPU, in eval mode)."""
        path = Path(path)
        if not (path / RECOMMENDER_FACE).is_file():
            raise TslrecError(f"{path}: not a saved recommender (no {RECOMMENDER_FACE})")
        face = read_json(path / RECOMMENDER_FACE)
        model, meta = load_model(path)
        tensors = load_tensors(path / RECOMMENDER_HISTORIES)
        bounds = np.cumsum(tensors["lengths"].numpy())[:-1]
        users = len(face["users"])
        dataset = SequenceDataset(
            sequences=np.split(tensors["items"].numpy(), bounds),
            users=face["users"],
            items=face["items"],
            titles=face["titles"],
            attributes=face["attributes"],
            valid_negatives=np.zeros((users, 0), dtype=np.int64),  # not saved: full ranking only
            test_negatives=np.zeros((users, 0), dtype=np.int64),
            manifest=face["manifest"],
            path=path,
        )
        recommender = cls(config=config_from_dict(face["config"], str(path)), progress=False)
        recommender.model, recommender.dataset = model.eval(), dataset
        recommender._meta = {key: value for key, value in meta.items() if key == "item_embedding"}
        return recommender

    def _fitted(self) -> tuple[SequentialRecommender, SequenceDataset]:
        if self.model is None or self.dataset is None:
            raise TslrecError("this recommender is not fitted: call fit(dataset) first")
        return self.model, self.dataset

    def __repr__(self) -> str:
        enhanced = f", enhanced ({self.config.enhance.mode})" if self.item_table is not None else ""
        state = "fitted" if self.model is not None else "not fitted"
        return f"Recommender({self.config.model.name}{enhanced}, {state})"


def _resolve_config(
    backbone: str | None, config: Config | str | Path | None, settings: dict[str, Any]
) -> Config:
    """The config the recommender trains under: `config` for `backbone`, `settings` on top."""
    check_backbone(backbone, "Recommender: unknown backbone '{name}': expected one of {expected}")
    base = config if isinstance(config, Config) else load_config(config)
    base = base.for_backbone(backbone or base.model.name)
    raw = base.model_dump(mode="json")
    for key, value in settings.items():
        if key == "eval":
            if not isinstance(value, dict):
                raise ConfigError("Recommender: eval takes a mapping, e.g. {'mask_seen': True}")
            raw["eval"].update(value)
        elif key in ModelConfig.model_fields and key != "name":
            raw["model"][key] = value
        elif key in TrainConfig.model_fields:
            raw["train"][key] = value
        elif key in _ENHANCE_KEYS and key in EnhanceConfig.model_fields:
            raw["enhance"][key] = value
        else:
            raise ConfigError(
                f"Recommender: unknown setting '{key}': expected a model or train setting, "
                f"{' or '.join(_ENHANCE_KEYS)}, or eval={{...}} (the backbone comes first)"
            )
    return config_from_dict(raw, "Recommender")


def _data_config(dataset: SequenceDataset) -> DataConfig:
    """The `data` settings the dataset was prepared under, as its manifest records them."""
    return DataConfig.model_validate(dataset.manifest["settings"])


def _load_table(table: torch.Tensor | str | Path) -> torch.Tensor:
    if isinstance(table, torch.Tensor):
        if table.dim() != 2:
            raise TslrecError(f"item_table: expected an (N+1, D) matrix, got {tuple(table.shape)}")
        return table.detach().float().cpu()
    from tslrec.llm.augment import load_item_embeddings  # here: only a path needs the LLM code

    return load_item_embeddings(table)[0]
