"""The run records: what the stages write as JSON and the report, the CLI and the benchmarks
read back, as typed objects.

Read by string keys, a renamed or missing field surfaces as a KeyError deep inside a report, or
not at all where the reader used `.get`; typed, a record is checked once, where it is read, and
a file that does not hold one is a TslrecError naming the file and the field. Each record is
written by `save` and read by `load`, nothing else, so writer and readers share one definition.

The on-disk format is the one the stages wrote as plain dicts: the same keys (fields whose name
is no Python identifier, such as ``best_valid_NDCG@10``, carry it as their alias), in the same
order, with the same values (NaN and infinity kept, as `json.dumps` writes them). A few fields
are optional because readers tolerated their absence before; those are left out of the file
when unset, so a record read and written again is the file it came from.

Kept free of everything in tslrec above `io` and `errors`, so any layer can import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from tslrec.errors import TslrecError
from tslrec.io import read_json, write_json

R = TypeVar("R", bound=BaseModel)

# A test evaluation's summary (`tslrec.evaluation.evaluator.EvalResult.summary`): split,
# protocol and mask_seen, then each metric by name ("NDCG@10", "tail_HR@5", "tail_users", ...).
# A mapping, not a model: its keys are the metric names, which depend on `eval.ks`.
Metrics = dict[str, Any]


class Record(BaseModel):
    """A JSON record: unknown keys are errors (a misspelt field is never silently dropped), and
    the fields named in `OMIT_WHEN_NONE` are left out of the file while they are None."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    def omitted(self) -> frozenset[str]:
        """The fields left out of the file while they are None."""
        return self.OMIT_WHEN_NONE

    @model_serializer(mode="wrap")
    def _omit_unset(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        fields = type(self).model_fields
        keys = {fields[n].alias or n if info.by_alias else n for n in self.omitted()}
        return {k: v for k, v in handler(self).items() if not (k in keys and v is None)}

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object its file holds (keys by alias, in field order)."""
        return self.model_dump(by_alias=True)

    def save(self, path: str | Path) -> None:
        """Write the record to `path` atomically."""
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> Self:
        """The record in `data`, parsed JSON from `source`; a TslrecError naming `source` and
        the first field that is missing, unknown or of the wrong type."""
        return _validate(cls, data, source)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read the record `save` wrote to `path`; a TslrecError naming the file when it is
        missing, not JSON, or not this record."""
        return _validate(cls, _read(path), path)


def _read(path: str | Path) -> Any:
    if not Path(path).is_file():
        raise TslrecError(f"{path}: missing")
    return read_json(path)


def _validate(cls: type[R], data: Any, source: str | Path) -> R:
    """`cls` validated from `data`, or a TslrecError naming `source` and the first bad field."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise TslrecError(
            f"{source}: not a valid {cls.__name__} ({field}: {first['msg'].lower()}); "
            "it was written by another version of tslrec or damaged: delete it to recompute"
        ) from None


class ModelRecord(Record):
    """`models/<tag>/results.json`: one trained backbone's test metrics, cost and settings.

    Its presence marks the training finished; `settings_key` is what a rerun must match to
    reuse it. `item_embedding` and `stage2` are set for an enhanced backbone only.
    """

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"item_embedding", "stage2"})

    tag: str
    backbone: str
    dataset: str
    seed: int
    test: Metrics
    best_epoch: int
    best_valid_ndcg: float = Field(alias="best_valid_NDCG@10")
    epochs_run: int
    seconds: float
    seconds_to_best: float
    seconds_per_epoch: float
    peak_memory_mb: float
    settings_key: str
    processes: int  # train.batch_size is per process
    git_commit: str | None  # the code that trained it; None outside a git checkout
    item_embedding: dict[str, Any] | None = None  # the enhanced embedding's spec
    stage2: str | None = None  # the key of the table the enhanced backbone was given


class EpochRecord(Record):
    """One trained epoch (`tslrec.training.trainer.TrainState.end_epoch`)."""

    epoch: int  # 1-based
    loss: float  # the mean training loss over the epoch's batches
    valid_ndcg: float = Field(alias="valid_NDCG@10")  # what early stopping reads
    seconds: float  # training and validation


class TrainingHistory(RootModel[list[EpochRecord]]):
    """`models/<tag>/history.json`: every epoch trained so far, in order (the report's training
    curves). Rewritten after each epoch; a JSON list, so a plot or a notebook reads it as is."""

    model_config = ConfigDict(frozen=True)

    def save(self, path: str | Path) -> None:
        """Write the history to `path` atomically."""
        write_json(path, self.model_dump(by_alias=True))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read the history `save` wrote; a TslrecError naming the file and the bad field."""
        return _validate(cls, _read(path), path)


class MemoryFigures(Record):
    """Host memory a stretch of work took (`tslrec.memory.PeakMemory.figures`), MiB."""

    peak_growth_mib: float
    peak_rss_mib: float


class SftStats(Record):
    """`sft/sft_stats.json` in a stage-1 directory: what fine-tuning cost and how its loss went
    (all epochs, including resumed ones)."""

    level: str
    samples: int
    epochs: int
    steps: int
    seconds: float
    seconds_per_epoch: list[float] = Field(default_factory=list)
    step_losses: list[float] = Field(default_factory=list)
    epoch_losses: list[float] = Field(default_factory=list)
    resumed_from_epoch: int = 0
    # The loss of predicting the samples' mean target for every sample: what the epoch losses
    # must beat for the LLM to have learned anything about individual users.
    mean_target_loss: float


class EmbedStats(Record):
    """Stage 2's embedding pass (`tslrec.llm.augment.stats_path`, beside its table)."""

    items: int
    computed: int
    resumed: int
    seconds: float
    items_per_second: float


class HeadAccuracy(Record):
    """The fine-tuned head on the one-item states against each item's category, and floors."""

    top1: float
    top5: float
    mean_rank: float
    categories_predicted: int
    majority_rate: float
    top5_chance: float


class ProbeAccuracy(Record):
    """Cross-validated accuracy of the probes predicting an item's category from a table."""

    linear: float
    knn: float


class HeldoutLoss(Record):
    """The loss on users who never trained, against predicting the training users' mean."""

    users: int
    loss: float
    mean_target_loss: float


class Transmission(Record):
    """What stage 1 got through to stage 2 (`tslrec.llm.transmission`). `head_one_item` is
    there when stage 2 pools the last token (as the head does); `heldout` when users were held
    out of fine-tuning."""

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"head_one_item"})

    items: int
    categories_k: int
    head_one_item: HeadAccuracy | None = None
    probes: dict[str, ProbeAccuracy]
    heldout: HeldoutLoss | None = None


class StageStats(Record):
    """`stages.json` beside stage 2's table: the statistics of stages 1 and 2, and the keys
    that name their directories."""

    stage1_key: str
    stage2_key: str
    categories_k: int
    category_sizes: list[int]
    prompt: dict[str, Any]  # `PromptBuilder.describe`: which prompts the run used
    llm_load_seconds: float
    categories_seconds: float
    untuned_embed_seconds: float
    untuned_memory: MemoryFigures
    sft: SftStats
    sft_seconds: float
    embed_seconds: float
    embed: EmbedStats
    transmission: Transmission
    diagnostics_seconds: float
    memory: MemoryFigures  # what stages 1-2 took together


class TableStats(StageStats):
    """Stages 1-2's statistics plus what making one `enhance.table` table alone took."""

    table_seconds: float
    table_memory_mib: float  # peak host memory growth

    @classmethod
    def of(cls, stages: StageStats, seconds: float, memory_mib: float) -> TableStats:
        return cls(**dict(stages), table_seconds=seconds, table_memory_mib=memory_mib)


class PairedTest(Record):
    """Paired tests over users of per-user NDCG@10 (`tslrec.evaluation.significance`)."""

    mean_diff: float
    ttest_p: float
    wilcoxon_p: float
    users: int


class ComparisonRow(Record):
    """One row of a run's results.json: a backbone trained plain and with the item table."""

    backbone: str
    mode: str
    table: str
    plain: Metrics
    enhanced: Metrics
    plain_train_seconds: float
    enhanced_train_seconds: float
    paired_test: PairedTest = Field(alias="paired_test_NDCG@10")
    # per view of the test evaluation ("tail_", "sampled_", ...): NDCG@10's paired test
    paired_test_views: dict[str, PairedTest] = Field(default_factory=dict)
    plain_dir: str  # as the run recorded it: relative to wherever the run was started
    enhanced_dir: str


class Stage0Summary(Record):
    """Stage 0's (the plain SASRec's) figures a run's results.json repeats."""

    best_epoch: int
    seconds: float
    seconds_per_epoch: float


class RunResults(Record):
    """A `tslrec run`'s own results.json: the plain-vs-enhanced rows and every stage's cost."""

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"tail_rule"})

    dataset: str
    dataset_stats: dict[str, Any]  # `SequenceDataset.stats`
    llm: str
    protocol: str
    tail_rule: str | None = None  # which test targets are tail ones, in words
    rows: list[ComparisonRow]
    stages: TableStats
    stage0: Stage0Summary
    wall_seconds_this_run: dict[str, float]  # per stage; ~0 for stages found cached


# the metrics `tslrec compare` averages over seeds, in the order its rows hold them
COMPARE_METRICS = ("NDCG@10", "HR@10", "tail_NDCG@10", "best_valid_NDCG@10")


class CompareRow(Record):
    """One line of `tslrec compare` (`tslrec.pipeline.compare.compare_rows`): a backbone with one
    table (or plain), its figures over seeds, and its paired tests.

    A metric's mean and std are there where every run scored it; the table's cost, its gain and
    its tests are there on the tables' rows, not on plain's (where `best_control` is absent too;
    on a table's row it is None when no control was compared).
    """

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {
            *(
                f"{name}_{stat}"
                for name in ("ndcg", "hr", "tail_ndcg", "valid")
                for stat in ("mean", "std")
            ),
            "table_seconds",
            "table_memory_mib",
            "change_ndcg",
            "p_vs_plain",
            "p_vs_best_control",
        }
    )

    backbone: str
    table: str  # "plain", or an `enhance.table`
    seeds: int
    ndcg_mean: float | None = Field(None, alias="NDCG@10_mean")
    ndcg_std: float | None = Field(None, alias="NDCG@10_std")
    hr_mean: float | None = Field(None, alias="HR@10_mean")
    hr_std: float | None = Field(None, alias="HR@10_std")
    tail_ndcg_mean: float | None = Field(None, alias="tail_NDCG@10_mean")
    tail_ndcg_std: float | None = Field(None, alias="tail_NDCG@10_std")
    valid_mean: float | None = Field(None, alias="best_valid_NDCG@10_mean")
    valid_std: float | None = Field(None, alias="best_valid_NDCG@10_std")
    train_seconds: float
    table_seconds: float | None = None
    table_memory_mib: float | None = None  # peak host memory growth making the table
    change_ndcg: float | None = Field(None, alias="change_NDCG@10_%")  # over plain, percent
    p_vs_plain: float | None = None
    best_control: str | None = None  # the control best on validation NDCG@10
    p_vs_best_control: float | None = None

    def omitted(self) -> frozenset[str]:
        plain = self.table == "plain"
        return self.OMIT_WHEN_NONE | {"best_control"} if plain else self.OMIT_WHEN_NONE

    def spread(self, metric: str) -> tuple[float, float] | None:
        """The mean and std over seeds of one of `COMPARE_METRICS`; None where not scored."""
        data = self.to_json()
        mean = data.get(f"{metric}_mean")
        return None if mean is None else (mean, data[f"{metric}_std"])


class CompareReport(Record):
    """`compare.json`, beside compare.md: `tslrec compare`'s rows and the verdict they give."""

    rows: list[CompareRow]
    verdict: str
