"""tslrec: TSLRec / P2Rec, user-level LLM fine-tuning that makes sequential recommenders better.

The short way in, from a DataFrame of interactions to recommendations on its own ids::

    dataset = Dataset.from_frame(df, user="user_id", item="item_id", timestamp="ts")
    model = Recommender("sasrec", epochs=20).fit(dataset)
    model.recommend(["u1"], k=10)  # a DataFrame: user, rank, item, title, score

The pieces underneath, in the order data flows through them::

    cfg = load_config("configs/ml-100k.yaml")
    dataset = prepare_dataset(cfg.data, "runs/ml-100k/data")
    model = build_model(dataset.num_items, cfg.model)
    fit(model, dataset, cfg.train, cfg.eval, "runs/ml-100k/my-sasrec")
    evaluate(model, dataset, "test", cfg.eval).metrics
    run_tslrec(cfg)  # stage 0, 1, 2 and plain vs enhanced backbones
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Runs never touch the network. huggingface_hub reads this once, when it is first imported, so
# it is set here, before any tslrec module can import transformers; every load also passes
# local_files_only, which holds even where the hub was imported before tslrec (or where a
# user's own process set HF_HUB_OFFLINE=0 for its other downloads).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Imported on first use, so that `tslrec --help` and tools that only read figures
# (tslrec.evaluation.formatting) do not pay for torch.
_PUBLIC = {
    "Config": "tslrec.config",
    "Dataset": "tslrec.data.dataset",
    "Recommender": "tslrec.recommender",
    "load_config": "tslrec.config",
    "SequenceDataset": "tslrec.data.dataset",
    "prepare_dataset": "tslrec.data.prepare",
    "evaluate": "tslrec.evaluation.evaluator",
    "build_model": "tslrec.models",
    "run_tslrec": "tslrec.pipeline.tslrec",
    "fit": "tslrec.training.trainer",
}

if TYPE_CHECKING:
    from tslrec.config import Config, load_config
    from tslrec.data.dataset import Dataset, SequenceDataset
    from tslrec.data.prepare import prepare_dataset
    from tslrec.evaluation.evaluator import evaluate
    from tslrec.models import build_model
    from tslrec.pipeline.tslrec import run_tslrec
    from tslrec.recommender import Recommender
    from tslrec.training.trainer import fit


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tslrec' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


__all__ = [
    "Config",
    "Dataset",
    "Recommender",
    "SequenceDataset",
    "build_model",
    "evaluate",
    "fit",
    "load_config",
    "prepare_dataset",
    "run_tslrec",
]
