"""Validated configuration: a pydantic model per concern, from YAML, overridable by dotted keys.

Unknown keys and wrong types are errors that name the key, so a typo never silently falls back to
a default. Every run saves the fully resolved config next to its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tslrec.errors import ConfigError


def _named_directory(value: Any) -> Any:
    """An empty path is `Path('.')` to pydantic: the current directory, surely not what was
    meant; '.' says so when it is."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must name a directory (use '.' for the current one)")
    return value


OutputDir = Annotated[Path, BeforeValidator(_named_directory)]
# numpy and accelerate take seeds in [0, 2**32): a negative one would fail deep inside a stage
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


BackboneName = Literal["sasrec", "gru4rec", "bert4rec"]
# the one list of backbone names: tslrec.models.BACKBONES has these keys, in this order (a test
# checks, since a class cannot be derived from a name)
BACKBONE_NAMES: tuple[str, ...] = get_args(BackboneName)


def check_backbone(name: str | None, message: str) -> None:
    """Nothing if ``name`` is None or one of ``BACKBONE_NAMES``; else a ConfigError whose text is
    ``message`` formatted with ``name`` and ``expected`` (the names, comma-separated)."""
    if name is not None and name not in BACKBONE_NAMES:
        raise ConfigError(message.format(name=name, expected=", ".join(BACKBONE_NAMES)))


# TSLRec's item table and its controls (tslrec.llm.controls)
TableName = Literal["tslrec", "llm-raw", "random", "categories", "instance"]


class ColumnMapping(StrictModel):
    """Which columns of a user's interaction table hold what."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str = "timestamp"
    rating: str | None = None


class ItemColumnMapping(StrictModel):
    """Which columns of an item table hold the id, the title and the extra attributes."""

    item: str = "item_id"
    title: str | None = "title"
    attributes: list[str] = Field(default_factory=list)


class DataConfig(StrictModel):
    """Where the interactions come from and how they are prepared (`tslrec data prepare`).

    `format` picks the reader (README, "Bringing your own data"), `path` / `item_path` its files
    and `columns` / `item_columns` their column names. Preparation keeps ratings of at least
    `rating_threshold`, drops repeated user-item pairs (`deduplicate`, the earliest kept),
    applies an iterative `k_core`, and draws `num_sampled_negatives` per user with
    `negatives_seed` for the sampled protocol. `name` names the run (by default the file's).
    """

    name: str = "ml-100k"
    format: Literal[
        "builtin", "atomic", "table", "amazon-ratings", "amazon-reviews", "sequences", "lcrec"
    ] = "builtin"
    path: Path | None = None
    item_path: Path | None = None
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    item_columns: ItemColumnMapping = Field(default_factory=ItemColumnMapping)
    rating_threshold: float | None = None
    deduplicate: bool = True
    k_core: int = Field(5, ge=0)
    negatives_seed: Seed = 0
    num_sampled_negatives: int = Field(100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _name_from_path(cls, values: Any) -> Any:
        """A user's files name the run ("Office_Products", not the built-in default "ml-100k")."""
        if (
            isinstance(values, dict)
            and "name" not in values
            and values.get("path")
            and values.get("format", "builtin") != "builtin"
        ):
            values = {**values, "name": dataset_name(Path(values["path"]))}
        return values


_DATA_SUFFIXES = (".gz", ".json", ".jsonl", ".txt", ".csv", ".tsv", ".parquet", ".inter")


def dataset_name(path: Path) -> str:
    """A file's name without its data suffixes: Office_Products.inter.json -> Office_Products."""
    name = path.name
    while Path(name).suffix.lower() in _DATA_SUFFIXES and Path(name).stem:
        name = Path(name).stem
    return name


class ModelConfig(StrictModel):
    """The backbone and its size: shared by every backbone unless `per_backbone` says otherwise.

    `max_len` is how many of the most recent items a model reads; `mask_prob` is BERT4Rec's
    cloze-mask share in training; `num_heads` applies to the Transformers (SASRec, BERT4Rec).
    """

    name: BackboneName = "sasrec"
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # dropout on the T x T attention weights; its random masks are ~25% of a CPU step at T=200
    attention_dropout: bool = True
    max_len: int = Field(50, ge=2)
    mask_prob: float = Field(0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelConfig:
        """Checked here, not when the model is built: an epoch of data preparation later is
        too late to learn that attention cannot split the hidden size."""
        if self.name != "gru4rec" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        return self


# TrainConfig fields that change how fast a model trains, never what it learns
RUNTIME_FIELDS = frozenset({"num_threads", "ce_chunk_size"})
# ... and those that bound how long it trains: a run given more continues where it stopped
BUDGET_FIELDS = frozenset({"epochs", "patience"})


class TrainConfig(StrictModel):
    """How a backbone trains: loss, optimiser (Adam), budget and seed.

    `loss` is full cross-entropy (`ce`), `bce` against one sampled negative per target or
    `sampled_softmax` over `num_negatives`; training stops after `epochs`, or after `patience`
    epochs without a better validation NDCG@10. `num_threads` and `ce_chunk_size` change speed
    only, never what is learned; more `epochs` or `patience` continue a finished run.
    """

    loss: Literal["ce", "bce", "sampled_softmax"] = "ce"
    num_negatives: int = Field(256, ge=1)
    # rows of logits formed at once by the full-softmax loss (512 is fastest on a 2-core CPU)
    ce_chunk_size: int = Field(512, ge=1)
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    # learning rate: linear warm-up over this share of all `epochs`' steps, then `schedule`;
    # `cosine` decays to zero at `epochs`, so the budget becomes a setting, not just a cap
    warmup: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["constant", "cosine"] = "constant"
    patience: int = Field(10, ge=1)
    seed: Seed = 42
    # bf16 autocast (accelerate): ~2x faster on CPUs with AMX/AVX512-BF16 and on recent GPUs
    mixed_precision: Literal["no", "bf16"] = "no"
    num_threads: int | None = Field(None, ge=1)

    def budget_fields(self) -> frozenset[str]:
        """The settings a finished or interrupted run may be given more of and continue: the
        epochs and patience, except that a warm-up or decay is drawn over `epochs`."""
        if self.schedule == "constant" and self.warmup == 0:
            return BUDGET_FIELDS
        return BUDGET_FIELDS - {"epochs"}


class EvalConfig(StrictModel):
    """How models are scored: leave-one-out ranking of the held-out item.

    `full` ranks the whole catalogue (the sampled negatives' ranks are kept beside it),
    `sampled` only the target among its sampled negatives; `mask_seen` removes already-seen
    items from the ranking; `ks` are the cut-offs (10 is required: early stopping uses NDCG@10).
    """

    protocol: Literal["full", "sampled"] = "full"
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])
    mask_seen: bool = False
    batch_size: int = Field(512, ge=1)
    # test targets with fewer training interactions than this are the tail, scored apart
    # (LLMEmb's rule: popularity below 4); full ranking also scores the sampled protocol beside it
    tail_below: int = Field(4, ge=1)

    @field_validator("ks")
    @classmethod
    def _ks_include_10(cls, ks: list[int]) -> list[int]:
        if 10 not in ks or min(ks) < 1:
            raise ValueError("must be positive and include 10 (early stopping uses NDCG@10)")
        return sorted(set(ks))

    def describe(self) -> str:
        """The protocol in words, printed and saved with every result."""
        seen = "masked" if self.mask_seen else "not masked"
        return f"leave-one-out, {self.protocol} ranking, seen items {seen}"


class LLMConfig(StrictModel):
    """The LLM of stages 1-2: the built-in `smollm2-135m` or a local Hugging Face directory."""

    model: str = "smollm2-135m"
    dtype: Literal["float32", "bfloat16"] = "float32"
    cache_dir: Path = Path("cache/llm")


class CategoryConfig(StrictModel):
    """Stage 1's latent categories: k-means with `k` clusters on stage 0's item table."""

    k: int = Field(32, ge=2)
    normalize: bool = False
    seed: Seed = 0


class PromptConfig(StrictModel):
    """How a user's items become an LLM prompt: as titles, titles with attributes, one new token
    per item (`id_token`) or `item_17` strings; at most `max_items` items and `max_tokens`."""

    rendering: Literal["id_text", "id_token", "title", "title+attrs"] = "title"
    max_items: int = Field(10, ge=1)
    max_tokens: int = Field(160, ge=8)
    max_title_tokens: int = Field(12, ge=1)


class SFTConfig(StrictModel):
    """Stage 1's LoRA fine-tuning of the LLM to reconstruct users' category distributions.

    `level: user` is TSLRec's one sample per user and epoch, `instance` the costlier baseline
    of one per training prefix; the rest are the sample kind, the loss, LoRA's shape and the
    optimiser's schedule.
    """

    level: Literal["user", "instance"] = "user"
    # user-level samples: `window`, each epoch one window of 1..prompt.max_items consecutive
    # training items per user whose target counts exactly the items shown (a one-item window's
    # target is its item's category: what stage 2 asks); `history`, the last items shown with
    # the whole training history as target (the first version, kept for the ablation)
    samples: Literal["window", "history"] = "window"
    loss: Literal["mse", "kl"] = "mse"
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-4, gt=0.0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # LoRA on the last n decoder layers only (None = all): the backward pass then stops there,
    # which is what makes CPU fine-tuning affordable. Ignored for id_token prompts: their item
    # rows sit at the input, so the backward pass runs through every layer anyway, and the
    # adapters go on every layer too (an id_token run differs in adapter depth as well).
    lora_layers: int | None = Field(None, ge=1)
    # the head reads normalize(h - centre), centre = the untuned LLM's mean one-item state: LLM
    # states share a few huge dimensions (cosine ~0.999 between prompts), so without the centre
    # the head sees almost the same input for every user
    center: bool = True
    # `random`: small Gaussian weights, so the adapters get a gradient from the first step
    # (zero weights pass none back until the head has grown)
    head_init: Literal["zero", "random"] = "random"
    # id_token item rows start as seeded random rows, or from stage 0's item table through a
    # fixed random projection (`stage0`), at the same mean and spread
    item_rows: Literal["random", "stage0"] = "random"
    # learning rate: linear warm-up over this share of all steps, then `schedule`
    warmup: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["constant", "cosine"] = "constant"
    # users whose samples never train, for the held-out loss of the transmission diagnostics
    holdout: float = Field(0.1, ge=0.0, lt=1.0)
    # a seeded subset of this many samples per epoch (None = all): quick runs, and the
    # instance table's budget (by default as many prefixes as user-level trains users)
    max_samples: int | None = Field(None, ge=1)
    seed: Seed = 0


class AugmentConfig(StrictModel):
    """Stage 2: every item as a one-item prompt through the tuned LLM, pooled to its table row."""

    batch_size: int = Field(32, ge=1)
    pooling: Literal["last", "mean"] = "last"
    # what stage 2 hands the backbones: the pooled state (`hidden`), what the head reads
    # (`normalized`: centred and L2-normalised) or the head's K-dim output (`head`)
    features: Literal["hidden", "normalized", "head"] = "hidden"


class EnhanceConfig(StrictModel):
    """How the item table enters the downstream backbones, and which table it is.

    `mode`: `init` (a PCA of the table starts the id embedding), `adapter` (the frozen table
    through a trainable MLP) or `fusion` (the adapted table plus a fresh id embedding).
    """

    mode: Literal["init", "adapter", "fusion"] = "fusion"  # measured on ML-100K: README
    # which item table enters the model: TSLRec's, or a control of its shape without the LLM's
    # contribution (see tslrec.pipeline.tables); `tslrec compare` is a grid over this key
    table: TableName = "tslrec"
    table_seed: Seed = 0  # the random table's
    # the fusion adapter's last layer at the start: PyTorch's init, zeros (the model starts as
    # the plain one) or a tenth of PyTorch's init; see models.item_embedding.FusionEmbedding
    adapter_start: Literal["default", "zero", "small"] = "default"
    backbones: list[BackboneName] = Field(default_factory=lambda: ["sasrec", "gru4rec", "bert4rec"])

    @model_validator(mode="after")
    def _start_needs_fusion(self) -> EnhanceConfig:
        if self.adapter_start != "default" and self.mode != "fusion":
            raise ValueError(f"adapter_start '{self.adapter_start}' applies to mode 'fusion' only")
        return self


class BackboneSettings(StrictModel):
    """Where one backbone departs from the shared `model` and `train` sections, e.g. a GRU4Rec
    that wants a larger learning rate; its plain and enhanced runs both take them, so the
    comparison stays at equal settings."""

    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_settings(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _valid_settings(ModelConfig(), values, set_by_run="name")

    @field_validator("train")
    @classmethod
    def _train_settings(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _valid_settings(TrainConfig(), values, set_by_run="seed")


def _valid_settings(section: StrictModel, values: dict[str, Any], set_by_run: str) -> dict:
    """Each key a field of `section` and each value one it accepts, checked one by one."""
    for key, value in values.items():
        if key == set_by_run:
            raise ValueError(f"{key}: set by the run, not per backbone")
        if key not in type(section).model_fields:
            raise ValueError(f"{key}: not a setting of this section")
        try:
            setattr(section, key, value)  # validate_assignment checks the value
        except ValidationError as err:
            raise ValueError(f"{key}: {err.errors()[0]['msg']}") from None
    return values


class Config(StrictModel):
    """Everything a run needs; each section is owned by one stage."""

    output_dir: OutputDir = Path("runs/ml-100k")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    categories: CategoryConfig = Field(default_factory=CategoryConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    enhance: EnhanceConfig = Field(default_factory=EnhanceConfig)
    per_backbone: dict[BackboneName, BackboneSettings] = Field(default_factory=dict)

    def for_backbone(self, name: str) -> Config:
        """The config one backbone trains under: its name, and its `per_backbone` settings over
        the shared ones. The result has none left to apply, so resolving it again changes
        nothing."""
        extra = self.per_backbone.get(name, BackboneSettings())
        try:
            model = ModelConfig.model_validate(
                {**self.model.model_dump(), **extra.model, "name": name}
            )
            train = TrainConfig.model_validate({**self.train.model_dump(), **extra.train})
        except ValidationError as err:
            raise ConfigError(_format_validation_error(err, f"backbone '{name}'")) from None
        return self.model_copy(update={"model": model, "train": train, "per_backbone": {}})


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            message = e["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: key '{key}': {message} (got {e.get('input')!r})")
    return "\n".join(lines)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings; values parse as YAML so numbers and lists keep their type."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. train.lr=0.001")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return raw


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error as one line with the place: its own text spans lines and ends on a
    caret under a quoted snippet, which says nothing once printed on one line."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}") from None
    except UnicodeDecodeError as err:
        before = err.object[: err.start]
        line, column = before.count(b"\n") + 1, err.start - before.rfind(b"\n")
        raise ConfigError(f"{path}: line {line}, column {column}: expected UTF-8 text") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when `path` is None) and apply command-line overrides."""
    raw = _read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    return config_from_dict(apply_overrides(raw, overrides or []), source)


# Settings an experiment grid may vary: only the LLM stages, so every value shares the plain
# backbones (same settings, same seed) and the comparison is paired by construction.
LLM_STAGE_SECTIONS = ("llm", "categories", "prompt", "sft", "augment", "enhance")


class GridConfig(StrictModel):
    """One setting of the LLM stages and the values it takes, e.g. categories.k: [16, 32, 64]."""

    key: str
    values: list[Any] = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _llm_stage_setting(cls, key: str) -> str:
        if key.split(".")[0] not in LLM_STAGE_SECTIONS:
            raise ValueError(
                f"a grid varies a setting of the LLM stages ({', '.join(LLM_STAGE_SECTIONS)}); "
                "run other settings as separate experiments"
            )
        return key


class ExperimentConfig(StrictModel):
    """A grid of TSLRec runs: pipeline configs (one per dataset) x grid values x seeds."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    configs: list[Path] = Field(min_length=1)
    backbones: list[BackboneName] | None = None
    seeds: list[Seed] = Field(default_factory=lambda: [42], min_length=1)
    grid: GridConfig | None = None
    overrides: list[str] = Field(default_factory=list)
    output_dir: OutputDir = Path("runs/experiments")


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """An experiment file; `overrides` (KEY=VALUE) are added to its own, applied to every run."""
    try:
        exp = ExperimentConfig.model_validate(_read_yaml(path))
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, str(path))) from None
    return exp.model_copy(update={"overrides": [*exp.overrides, *(overrides or [])]})


def only_seeds(exp: ExperimentConfig, seeds: list[int]) -> ExperimentConfig:
    """Some of an experiment's seeds (one process per seed, or an experiment under way).

    Their tables go to `<name>-seeds-<seeds>/`, so the full experiment's stay as they are; every
    training is still found in the shared caches.
    """
    wanted = set(seeds)
    if unknown := sorted(wanted - set(exp.seeds)):
        raise ConfigError(f"experiment '{exp.name}': seeds {unknown} are not among {exp.seeds}")
    kept = [seed for seed in exp.seeds if seed in wanted]  # the file's order, each once
    tables = f"{exp.name}-seeds-{'-'.join(map(str, kept))}"
    return exp.model_copy(update={"seeds": kept, "name": tables})


def save_config(config: Config, path: str | Path) -> None:
    from tslrec.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
