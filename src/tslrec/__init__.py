"""tslrec: TSLRec / P2Rec, user-level LLM fine-tuning that makes sequential recommenders better.

The public API, in the order data flows through it::

    cfg = load_config("configs/ml-100k.yaml")
    dataset = prepare_dataset(cfg.data, "runs/ml-100k/data")
    model = build_model(dataset.num_items, cfg.model)
    fit(model, dataset, cfg.train, cfg.eval, "runs/ml-100k/models/sasrec")
    evaluate(model, dataset, "test", cfg.eval).metrics
    run_tslrec(cfg)  # stage 0, 1, 2 and plain vs enhanced backbones
"""

from tslrec.config import Config, load_config
from tslrec.data.dataset import SequenceDataset
from tslrec.data.prepare import prepare_dataset
from tslrec.evaluation.evaluator import evaluate
from tslrec.models import build_model
from tslrec.pipeline.tslrec import run_tslrec
from tslrec.training.trainer import fit

__version__ = "0.1.0"

__all__ = [
    "Config",
    "SequenceDataset",
    "build_model",
    "evaluate",
    "fit",
    "load_config",
    "prepare_dataset",
    "run_tslrec",
]
