"""How much of the latent categories reaches the items' enhanced embeddings (a diagnostic).

    python benchmarks/category_probe.py --config configs/ml-1m.yaml

Stage 1 teaches the LLM to read a user's category distribution from their items; stage 2 then
embeds each item alone, and the enhanced table helps a backbone only if it carries what stage 1
taught. The probe: 5-fold cross-validated accuracy of a 10-nearest-neighbour classifier
(standardised features) that predicts each item's latent category from
(a) stage 0's SASRec table, which the categories were clustered from (the ceiling);
(b) the stage-2 table, through the fine-tuned LLM;
(c) the same one-item prompts through the LLM before fine-tuning (fresh LoRA adapters are the
    identity), computed here: what the LLM knows of the items by itself from their titles.
    With `id_token` prompts the new item tokens start as seeded random rows, so (c) is a
    random-token floor, not knowledge.
The LLM runs in bfloat16, whose CPU kernels round differently with the thread count: (c) moves
in the third decimal between 1 and 2 threads, so the thread count is recorded.
Takes stages 0-2 from the caches of `tslrec run` with the same config (runs them if missing).
Writes benchmarks/results/category-probe-<dataset>[-<overrides>].json and prints it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from common import arguments, llm_stages, publish, result_name
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tslrec.config import load_config
from tslrec.layout import CATEGORIES, stage1_dir
from tslrec.llm.augment import embed_items, load_item_embeddings
from tslrec.llm.categories import LatentCategories
from tslrec.pipeline.tslrec import build_preference_model

NEIGHBOURS, FOLDS = 10, 5


def knn_accuracy(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    probe = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=NEIGHBOURS))
    folds = KFold(FOLDS, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, features, labels, cv=folds).mean())


def main() -> None:
    args = arguments(__doc__)
    cfg = load_config(args.config, args.set)
    dataset, stage0_table, table_path, stages = llm_stages(cfg)
    categories = LatentCategories.load(stage1_dir(cfg.output_dir, stages.stage1_key) / CATEGORIES)
    model, builder = build_preference_model(cfg, dataset, categories.k)  # adapters untrained
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "untuned.safetensors"
        untuned = embed_items(model, builder, dataset.num_items, cfg.augment, path)
    tables = {  # item rows only: row 0 of the LLM tables is padding
        "stage0_sasrec": stage0_table.numpy(),
        "stage2_finetuned_llm": load_item_embeddings(table_path)[0][1:].numpy(),
        "llm_before_finetuning": untuned[1:].numpy(),
    }
    labels = categories.labels[1:]
    seed = cfg.categories.seed
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "overrides": args.set,
        "prompt_rendering": cfg.prompt.rendering,
        "categories_k": categories.k,
        "items": int(labels.size),
        "probe": f"{NEIGHBOURS}-nearest neighbours, standardised features, {FOLDS}-fold CV",
        "largest_category_share": float(categories.counts.max() / categories.counts.sum()),
        "accuracy": {name: knn_accuracy(x, labels, seed) for name, x in tables.items()},
        "stage1_key": stages.stage1_key,
        "sft_epoch_losses": stages.sft.epoch_losses,
        "sft_mean_target_loss": stages.sft.mean_target_loss,
        "torch_threads": torch.get_num_threads(),
    }
    name = result_name("category-probe", cfg.data.name, *args.set)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
