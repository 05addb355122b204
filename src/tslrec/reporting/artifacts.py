"""Everything a report reads from a finished `tslrec run` directory, loaded and checked up front.

A report is made after the fact, maybe after the run directory moved, so every path is rebuilt
from the run directory: results.json records model directories relative to wherever the run was
started. A missing artifact is a TslrecError naming the file, before anything is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tslrec.data.dataset import SequenceDataset
from tslrec.errors import TslrecError
from tslrec.io import restore_interrupted
from tslrec.layout import (
    BEST,
    CATEGORIES,
    COMPARISON,
    DATA,
    HISTORY,
    MODEL_META,
    MODELS,
    PER_USER,
    RESULTS,
    SFT,
    SFT_STATS,
    STAGE0_BACKBONE,
    comparison_dir,
    embeddings_path,
    stage1_dir,
)
from tslrec.llm.augment import load_item_embeddings
from tslrec.llm.categories import LatentCategories
from tslrec.records import (
    CompareReport,
    ComparisonRow,
    EpochRecord,
    Metrics,
    ModelRecord,
    RunResults,
    SftStats,
    TrainingHistory,
)
from tslrec.training.checkpoint import load_model


def require(path: Path) -> Path:
    """`path` itself, or a TslrecError naming it: a report cannot be made without it."""
    if not path.exists():
        raise TslrecError(f"{path}: missing; the report needs a finished `tslrec run` directory")
    return path


@dataclass(frozen=True)
class ModelRun:
    """One trained backbone: per-epoch history, per-user test ranks and training seconds."""

    directory: Path
    history: list[EpochRecord]
    per_user: pl.DataFrame
    seconds: float

    @classmethod
    def load(cls, directory: Path, test: Metrics) -> ModelRun:
        """The model whose test metrics the run recorded as `test`, not one trained since."""
        record = ModelRecord.load(require(directory / RESULTS))
        _same_training(directory, record.test == test)
        return cls(
            directory=directory,
            history=TrainingHistory.load(require(directory / HISTORY)).root,
            per_user=pl.read_parquet(require(directory / PER_USER)),
            seconds=float(record.seconds),
        )


def _same_training(directory: Path, same: bool) -> None:
    """Refuse to draw a model retrained since the run's results.json next to that run's table."""
    if not same:
        raise TslrecError(
            f"{directory}: trained again since the run's {RESULTS} was written; rerun "
            "`tslrec run` with the run's config to bring its results up to date"
        )


@dataclass(frozen=True)
class Comparison:
    """One row of results.json: a backbone trained plain and with the TSLRec item table."""

    backbone: str
    mode: str
    plain: ModelRun
    enhanced: ModelRun


@dataclass(frozen=True)
class RunArtifacts:
    results: RunResults
    dataset: SequenceDataset
    comparisons: list[Comparison]
    categories: LatentCategories
    sft: SftStats  # the stage-1 directory's sft_stats.json
    stage0_items: np.ndarray  # (N, H) stage-0 SASRec item table, the one k-means clustered
    llm_items: np.ndarray  # (N, D) stage-2 LLM item embeddings
    stage0_dir: Path
    comparison: CompareReport | None = None  # `tslrec compare` on this run's config, if run

    def stage_costs(self) -> dict[str, float]:
        """Seconds each stage took when it was computed.

        They come from the stage records, not results.json's wall times, which are ~0 for stages
        a rerun found cached. The plain SASRec is the stage-0 model, so it is counted once.
        """
        stages = self.results.stages
        costs = {
            f"stage 0: SASRec (= plain {STAGE0_BACKBONE})": self.results.stage0.seconds,
            "stage 1: k-means categories": stages.categories_seconds,
            "stage 1: LLM load": stages.llm_load_seconds,
            "stage 1: SFT": stages.sft.seconds,  # also when stage 2 reused it
            "stage 2: item embeddings": stages.embed_seconds,
        }
        for c in self.comparisons:
            if c.plain.directory != self.stage0_dir:
                costs[f"train {c.backbone} plain"] = c.plain.seconds
            costs[f"train {c.backbone} TSLRec ({c.mode})"] = c.enhanced.seconds
        return costs


def model_dir(root: Path, recorded: str) -> Path:
    """A model directory of this run: `models/<tag>`, whatever prefix results.json recorded."""
    return root / MODELS / Path(recorded).name


def _comparisons(root: Path, rows: list[ComparisonRow]) -> list[Comparison]:
    if not rows:
        raise TslrecError(f"{root / RESULTS}: no plain-vs-enhanced rows (no enhanced models)")
    return [
        Comparison(
            backbone=row.backbone,
            mode=row.mode,
            plain=ModelRun.load(model_dir(root, row.plain_dir), row.plain),
            enhanced=ModelRun.load(model_dir(root, row.enhanced_dir), row.enhanced),
        )
        for row in rows
    ]


def load_run(root: Path) -> RunArtifacts:
    """Read results.json and every artifact the report draws from; fail early and by name."""
    root = Path(root)
    results = RunResults.load(require(root / RESULTS))
    stages = results.stages
    stage1 = stage1_dir(root, stages.stage1_key)
    stage0_dir = root / MODELS / STAGE0_BACKBONE
    stage0 = ModelRecord.load(require(stage0_dir / RESULTS))
    _same_training(stage0_dir, stage0.best_epoch == results.stage0.best_epoch)
    best = restore_interrupted(stage0_dir / BEST)
    stage0_model, _ = load_model(require(best / MODEL_META).parent)
    llm_table, _ = load_item_embeddings(embeddings_path(root, stages.stage2_key))
    return RunArtifacts(
        results=results,
        dataset=SequenceDataset.load(root / DATA),
        comparisons=_comparisons(root, results.rows),
        categories=LatentCategories.load(stage1 / CATEGORIES),
        sft=SftStats.load(require(stage1 / SFT / SFT_STATS)),
        stage0_items=stage0_model.item_embeddings().numpy(),
        llm_items=llm_table[1:].float().numpy(),
        stage0_dir=stage0_dir,
        comparison=_comparison(root, results.dataset),
    )


def _comparison(root: Path, dataset: str) -> CompareReport | None:
    path = comparison_dir(root, dataset) / COMPARISON
    return CompareReport.load(path) if path.is_file() else None
