"""Every file and directory name tslrec writes, shared by the modules that write them and the
ones (the report, the CLI, the benchmarks) that read them.

Kept free of everything else in tslrec, so any layer can import it: the names are part of the
on-disk format, so changing one orphans every finished run.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = "results.json"
RESULTS_MD = "results.md"  # the same, as a page to read
RUN_CONFIG = "config.yaml"  # the resolved config a run or a trained model was made with
PER_USER = "test_per_user.parquet"

DATA = "data"  # the prepared dataset of a run
# a trained backbone's directory, `models/<name>/`
MODELS = "models"
BEST = "best"  # the best checkpoint (`tslrec.training.checkpoint`)
HISTORY = "history.json"  # per-epoch loss and validation metric
TRAIN_STATE = "state"  # the resumable state (`tslrec.checkpointer`), rewritten every epoch
RUN_SETTINGS = "settings.json"  # the settings key a resumed training must match

SFT_CHECKPOINT = "checkpoint"  # in a stage-1 `sft/`: the adapters, and the resumable state
SFT_STATS = "sft_stats.json"  # in a stage-1 `sft/`: what fine-tuning cost and its losses
STAGES = "stages.json"  # beside stage 2's table: the statistics of stages 1 and 2

EMBEDDINGS = "item_embeddings.safetensors"
STAGE0_BACKBONE = "sasrec"
CATEGORIES, SFT = "categories", "sft"  # the sub-directories of a stage-1 directory
# the LLM's one-item states before fine-tuning, in a stage-1 directory: the head's centre and
# the transmission diagnostics' floor
UNTUNED_EMBEDDINGS = "untuned_item_embeddings.safetensors"


# inside a checkpoint (`tslrec.training.checkpoint`): the weights and the model's settings
MODEL_FILE, MODEL_META = "model.safetensors", "model.json"
# inside a resumable state (`tslrec.checkpointer`): progress, optimizer and RNG states
CHECKPOINT_PROGRESS = "progress.json"
CHECKPOINT_OPTIMIZER = "optimizer.safetensors"
CHECKPOINT_RNG = "rng.safetensors"

# a prepared dataset's directory (`DATA`, `tslrec.data.prepare`)
MANIFEST = "manifest.json"
INTERACTIONS, USERS, ITEMS = "interactions.parquet", "users.parquet", "items.parquet"
NEGATIVES = "negatives.parquet"

# a stage-1 `categories/`: the k-means centroids and assignments, and their settings
CATEGORIES_TENSORS, CATEGORIES_META = "categories.safetensors", "categories.json"
# an LLM converted from its GGUF file (`tslrec.llm.causal_lm`): marks the conversion finished
LLM_CACHE_MARKER = "tslrec_cache.json"
# a saved `tslrec.recommender.Recommender`
RECOMMENDER_FACE, RECOMMENDER_HISTORIES = "recommender.json", "histories.safetensors"

COMPARISON = "compare.json"  # `tslrec compare`'s rows and verdict, beside COMPARISON_MD
COMPARISON_MD = "compare.md"
# `tslrec experiment`'s directory: every run and the summary over seeds (each also as .csv)
EXPERIMENT_RUNS, EXPERIMENT_SUMMARY = "results.parquet", "summary.parquet"
EXPERIMENT_SUMMARY_MD = "summary.md"
EXPERIMENT_SPEC = "experiment.json"  # the experiment config it ran
REPORT_INDEX = "index.html"  # `tslrec report`'s page


def comparison_dir(output_dir: Path, dataset: str) -> Path:
    """Where `tslrec compare` on a run's config writes: the experiments beside the run."""
    return output_dir.parent / "experiments" / f"compare-{dataset}"


def stage1_dir(output_dir: Path, key1: str) -> Path:
    """Where stage 1 keeps its `categories/` and `sft/` (adapters and sft_stats.json)."""
    return output_dir / "stage1" / key1


def embeddings_path(output_dir: Path, key2: str, features: str = "hidden") -> Path:
    """Stage 2's (N+1, D) item table of pooled states (`hidden`) or of what is read out from
    them (`augment.features`, beside it); `stages.json` next to it records stages 1 and 2."""
    name = EMBEDDINGS if features == "hidden" else EMBEDDINGS.replace(".", f".{features}.", 1)
    return output_dir / "stage2" / key2 / name
