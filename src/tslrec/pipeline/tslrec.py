"""TSLRec end to end: stage 0 (pre-trained SASRec), stage 1 (user-level SFT), stage 2 (item
embeddings), then plain and enhanced backbones side by side.

Each stage lives in a directory named by a hash of everything it depends on, so a rerun skips
finished stages and changing a setting (say categories.k) redoes exactly the stages downstream
of it. Stage 0 is the plain SASRec baseline itself: the same model, settings and seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from tslrec.config import Config, save_config
from tslrec.data.dataset import SequenceDataset
from tslrec.errors import TslrecError
from tslrec.evaluation.formatting import VIEWS, comparison_table, views_table
from tslrec.evaluation.significance import paired_test_of_runs, paired_views
from tslrec.io import atomic_path, save_tensors
from tslrec.layout import (
    BEST,
    CATEGORIES,
    CATEGORIES_META,
    RESULTS,
    RESULTS_MD,
    RUN_CONFIG,
    SFT,
    STAGE0_BACKBONE,
    STAGES,
    UNTUNED_EMBEDDINGS,
    embeddings_path,
    stage1_dir,
)
from tslrec.llm import sft as sft_stage
from tslrec.llm import sft_checkpoint, sft_samples
from tslrec.llm.augment import TENSOR_NAME, embed_items, load_item_embeddings, stats_path
from tslrec.llm.categories import LatentCategories, fit_categories
from tslrec.llm.causal_lm import load_causal_lm
from tslrec.llm.controls import category_table, random_table
from tslrec.llm.preference_model import PreferenceModel, item_start_rows, readout
from tslrec.llm.prompts import TEMPLATE_VERSION, PromptBuilder
from tslrec.llm.transmission import transmission, transmission_lines
from tslrec.memory import PeakMemory
from tslrec.models.item_embedding import enhanced_item_embedding, table_fingerprint
from tslrec.pipeline.train import (
    load_dataset,
    run_dir,
    stage_key,
    train_and_evaluate,
)
from tslrec.records import (
    ComparisonRow,
    EmbedStats,
    HeldoutLoss,
    ModelRecord,
    RunResults,
    SftStats,
    Stage0Summary,
    StageStats,
    TableStats,
    Transmission,
)
from tslrec.training.accelerator import (
    launch_key,
    main_process_first,
    process_state,
    wait_for_everyone,
)
from tslrec.training.checkpoint import load_model

HELDOUT_SEED = 10_000  # the held-out users' windows: drawn apart from every training epoch's


def stage0(
    cfg: Config, dataset: SequenceDataset, progress: bool
) -> tuple[ModelRecord, torch.Tensor]:
    """Train (or reuse) the plain SASRec; its item table is what k-means clusters."""
    sasrec = cfg.for_backbone(STAGE0_BACKBONE)
    record = train_and_evaluate(sasrec, dataset, progress=progress)
    model, _ = load_model(run_dir(sasrec) / BEST)
    return record, model.item_embeddings()


def build_preference_model(
    cfg: Config,
    dataset: SequenceDataset,
    num_categories: int,
    stage0_table: torch.Tensor | None = None,
) -> tuple[PreferenceModel, PromptBuilder]:
    """The LLM with fresh LoRA adapters and head, and the prompt builder for this dataset.

    ``stage0_table`` (N, H) is where id_token rows start under ``sft.item_rows = stage0``."""
    llm, tokenizer = load_causal_lm(cfg.llm)
    text = dataset.has_text
    builder = PromptBuilder(
        tokenizer,
        cfg.prompt,
        dataset.num_items,
        dataset.titles if text else None,
        dataset.attributes if text else None,
    )
    start = None
    if builder.item_token_ids and cfg.sft.item_rows == "stage0":
        if stage0_table is None:
            raise TslrecError("sft.item_rows = stage0 needs stage 0's item table")
        start = item_start_rows(stage0_table, int(llm.config.hidden_size))
    set_seed(cfg.sft.seed)
    model = PreferenceModel(
        llm, num_categories, cfg.sft, builder.item_token_ids, builder.vocab_size, start
    )
    return model, builder


def stage1_and_2(
    cfg: Config, dataset: SequenceDataset, item_embeddings: torch.Tensor
) -> tuple[Path, StageStats]:
    """Fit categories, fine-tune the LLM on user-level samples, embed every item.

    Returns the path of the (N+1, D) enhanced table (``augment.features`` of the one-item
    states) and the stage statistics, transmission diagnostics included. Nothing is recomputed
    when the table for these exact inputs and settings exists already. Stage 1 is keyed on
    stage 0's item table itself rather than on stage 0's settings, so a stage 0 given more
    epochs or patience that ends on the same best checkpoint reuses the LLM stages.
    """
    key1 = stage_key(
        table_fingerprint(item_embeddings),  # stage 0's table: what k-means and targets see
        dataset.manifest["content_hash"],  # the training sequences behind targets and prompts
        dataset.manifest["input_fingerprint"],  # the item text, which never reaches stage 0
        TEMPLATE_VERSION,
        cfg.categories,
        cfg.prompt,
        cfg.sft,
        cfg.llm.model,
        cfg.llm.dtype,
        *launch_key(),
    )
    key2 = stage_key(key1, cfg.augment.pooling)
    stage1 = stage1_dir(cfg.output_dir, key1)
    hidden_path = embeddings_path(cfg.output_dir, key2)
    stats_file = hidden_path.parent / STAGES
    if not (hidden_path.is_file() and stats_file.is_file()):
        with PeakMemory() as peak:
            stats = _llm_stages(cfg, dataset, item_embeddings, stage1, hidden_path)
        if process_state().is_main_process:  # memory: what stages 1-2 took, for the table's cost
            keys = {"stage1_key": key1, "stage2_key": key2}
            StageStats(**keys, **stats, memory=peak.figures()).save(stats_file)
        wait_for_everyone()
    stats = StageStats.load(stats_file)
    table_path = embeddings_path(cfg.output_dir, key2, cfg.augment.features)
    if process_state().is_main_process and not table_path.is_file():
        _read_out(hidden_path, stage1 / SFT, cfg.augment.features, table_path)
    wait_for_everyone()
    return table_path, stats


def _llm_stages(
    cfg: Config,
    dataset: SequenceDataset,
    item_embeddings: torch.Tensor,
    stage1: Path,
    hidden_path: Path,
) -> dict[str, Any]:
    """Stages 1 and 2 proper: categories, the untuned states, SFT, the one-item states, and
    the diagnostics of what got through; returns their statistics, the fields of `StageStats`
    but the keys and the memory (the diagnostics on the main process only)."""
    process = process_state()  # under `accelerate launch`: all fine-tune, the main one writes
    start = time.perf_counter()
    categories = _categories(cfg, item_embeddings, stage1 / CATEGORIES)
    seconds_categories = time.perf_counter() - start

    with PeakMemory() as untuned_peak:  # what the llm-raw table alone costs
        start = time.perf_counter()
        model, builder = build_preference_model(cfg, dataset, categories.k, item_embeddings)
        seconds_load = time.perf_counter() - start

        start = time.perf_counter()  # the LLM's one-item states before any fine-tuning
        last = cfg.augment.model_copy(update={"pooling": "last"})
        with main_process_first():
            untuned_path = stage1 / UNTUNED_EMBEDDINGS
            untuned = embed_items(model, builder, dataset.num_items, last, untuned_path)
        seconds_untuned = time.perf_counter() - start
    if cfg.sft.center:
        model.set_center(untuned[1:].mean(dim=0))

    start = time.perf_counter()
    train, heldout = _sft_samples(cfg, dataset, categories, builder)
    sft = sft_stage.fine_tune(model, train, cfg.sft, stage1 / SFT)
    heldout_figures = _heldout(cfg, model, train, heldout)
    seconds_sft = time.perf_counter() - start

    start = time.perf_counter()
    hidden = None
    if process.is_main_process:  # one forward pass per item: not worth sharding
        hidden = embed_items(model, builder, dataset.num_items, cfg.augment, hidden_path)
    wait_for_everyone()
    seconds_embed = time.perf_counter() - start

    start = time.perf_counter()
    diagnostics = None
    if process.is_main_process:
        diagnostics = _diagnostics(cfg, categories, item_embeddings, untuned, hidden, model)
        diagnostics = diagnostics.model_copy(update={"heldout": heldout_figures})
    seconds_diagnostics = time.perf_counter() - start
    return {
        "categories_k": categories.k,
        "category_sizes": [int(c) for c in categories.counts],
        "prompt": builder.describe(),
        "llm_load_seconds": seconds_load,
        "categories_seconds": seconds_categories,
        "untuned_embed_seconds": seconds_untuned,
        "untuned_memory": untuned_peak.figures(),
        "sft": sft,
        "sft_seconds": seconds_sft,
        "embed_seconds": seconds_embed,
        "embed": EmbedStats.load(stats_path(hidden_path)),
        "transmission": diagnostics,
        "diagnostics_seconds": seconds_diagnostics,
    }


def _heldout(
    cfg: Config,
    model: PreferenceModel,
    train: sft_stage.EpochSamples,
    heldout: list[sft_samples.Sample],
) -> HeldoutLoss | None:
    """The loss on users who never trained, against the training users' mean target."""
    if not heldout:
        return None
    last_epoch = train(cfg.sft.epochs - 1)
    return HeldoutLoss(
        users=len(heldout),
        loss=sft_stage.evaluation_loss(model, heldout, cfg.augment.batch_size),
        mean_target_loss=sft_samples.mean_target_loss(heldout, cfg.sft.loss, last_epoch),
    )


def _diagnostics(
    cfg: Config,
    categories: LatentCategories,
    stage0_table: torch.Tensor,
    untuned: torch.Tensor,
    hidden: torch.Tensor,
    model: PreferenceModel,
) -> Transmission:
    """The transmission diagnostics: the head on the one-item states (where stage 2 pools the
    last token, as the head does) and the probes on stage 0's, the untuned and the stage-2
    tables."""
    head = {
        "center": model.center.detach().cpu(),
        "weight": model.head.weight.detach().cpu(),
        "bias": model.head.bias.detach().cpu(),
    }
    stage2 = readout(hidden, head["center"], head["weight"], head["bias"], cfg.augment.features)
    tables = {
        "stage0_sasrec": stage0_table.numpy(),
        "llm_before_sft": untuned[1:].numpy(),
        f"stage2_{cfg.augment.features}": stage2[1:].numpy(),
    }
    last = cfg.augment.pooling == "last"
    seed = cfg.categories.seed
    return transmission(categories.labels, tables, hidden if last else None, head, seed)


def _read_out(hidden_path: Path, sft_dir: Path, features: str, table_path: Path) -> None:
    """Write the ``features`` table beside the one-item states it is read out from."""
    hidden, metadata = load_item_embeddings(hidden_path)
    head = sft_checkpoint.fine_tuned_head(sft_dir)
    table = readout(hidden, head["center"], head["weight"], head["bias"], features)
    save_tensors(table_path, {TENSOR_NAME: table}, metadata={**metadata, "features": features})


def _categories(cfg: Config, item_embeddings: torch.Tensor, directory: Path) -> LatentCategories:
    """Stage 1's k-means on stage 0's items, fitted once and shared by every process."""
    with main_process_first():
        if (directory / CATEGORIES_META).is_file():
            return LatentCategories.load(directory)
        categories = fit_categories(item_embeddings.numpy(), cfg.categories)
        categories.save(directory)
        return categories


def _sft_samples(
    cfg: Config, dataset: SequenceDataset, categories: LatentCategories, builder: PromptBuilder
) -> tuple[sft_stage.EpochSamples, list[sft_samples.Sample]]:
    """Each epoch's samples from the training users, and the held-out users' samples.

    One sample per user (the method: a window drawn anew each epoch, or the history), or one
    per training step (the instance-level baseline). Held-out users' sequences are emptied for
    training, so none of their items reach a training prompt or target."""
    train = dataset.train_sequences()
    users, held = sft_samples.holdout_users(train, cfg.sft.holdout, cfg.sft.seed)

    def only(kept: set[int]) -> list:
        return [s if u in kept else [] for u, s in enumerate(train)]

    training, heldout = only(set(users)), only(set(held))
    labels, k, seed = categories.labels, categories.k, cfg.sft.seed
    if cfg.sft.level == "user" and cfg.sft.samples == "window":
        held_samples = sft_samples.window_samples(heldout, labels, k, builder, HELDOUT_SEED + seed)
        return (
            lambda epoch: sft_samples.window_samples(training, labels, k, builder, seed + epoch),
            held_samples,
        )
    held_samples = sft_samples.user_level_samples(heldout, labels, k, builder)
    if cfg.sft.level == "user":
        fixed = sft_samples.user_level_samples(training, labels, k, builder)
    else:
        fixed = sft_samples.instance_level_samples(
            training, labels, k, builder, cfg.sft.max_samples, seed
        )
    return lambda epoch: fixed, held_samples


def instance_config(cfg: Config, dataset: SequenceDataset) -> Config:
    """Instance-level SFT at equal compute: a seeded subset of as many training prefixes per
    epoch as user-level SFT has samples (one per training user, `sft.max_samples` capping
    both). All of them would cost about sum(len - 1) / users times as much (~100x on ML-100K),
    which `benchmarks/sft_efficiency.py` measures."""
    users, _ = sft_samples.holdout_users(dataset.train_sequences(), cfg.sft.holdout, cfg.sft.seed)
    budget = min(len(users), cfg.sft.max_samples or len(users))
    sft = cfg.sft.model_copy(update={"level": "instance", "max_samples": budget})
    return cfg.model_copy(update={"sft": sft})


def item_table(
    cfg: Config, dataset: SequenceDataset, item_embeddings: torch.Tensor
) -> tuple[Path, TableStats, str]:
    """The ``enhance.table`` table for this config: (its path, stages 1-2's statistics with the
    table's own cost, ``table_seconds`` and ``table_memory_mib``, the key its downstream runs
    are named by), made now if missing. Stages 1 and 2 run (or come from their cache) for every
    table but ``instance``: the controls take their shape, categories or untuned states from
    them."""
    kind = cfg.enhance.table
    if kind in ("tslrec", "instance"):  # the LLM stages' own table, from user or instance SFT
        llm_cfg = instance_config(cfg, dataset) if kind == "instance" else cfg
        path, stats = stage1_and_2(llm_cfg, dataset, item_embeddings)
        cost = TableStats.of(stats, _llm_seconds(stats), stats.memory.peak_growth_mib)
        return path, cost, stats.stage2_key
    path, stats = stage1_and_2(cfg, dataset, item_embeddings)
    stage1 = stage1_dir(cfg.output_dir, stats.stage1_key)
    if kind == "llm-raw":
        seconds = stats.llm_load_seconds + stats.untuned_embed_seconds
        cost = TableStats.of(stats, seconds, stats.untuned_memory.peak_growth_mib)
        return stage1 / UNTUNED_EMBEDDINGS, cost, _key(kind, stats)
    seed = cfg.enhance.table_seed
    # the random table copies the shape of the features read out; the one-hot does not
    name = f"random-{cfg.augment.features}-{seed}" if kind == "random" else kind
    control = embeddings_path(cfg.output_dir, stats.stage2_key, name)
    if process_state().is_main_process and not control.is_file():
        with PeakMemory() as peak:
            if kind == "random":
                table = random_table(load_item_embeddings(path)[0], seed)
            else:
                categories = LatentCategories.load(stage1 / CATEGORIES)
                table = category_table(torch.as_tensor(categories.labels), categories.k)
        metadata = {"table": kind, "seed": str(seed), "peak_growth_mib": str(peak.growth_mib)}
        save_tensors(control, {TENSOR_NAME: table}, metadata=metadata)
    wait_for_everyone()
    seconds = stats.categories_seconds if kind == "categories" else 0.0
    memory = float(load_item_embeddings(control)[1]["peak_growth_mib"])
    return control, TableStats.of(stats, seconds, memory), _key(name, stats)


def _key(kind: str, stats: StageStats, *parts: object) -> str:
    return stage_key(kind, stats.stage2_key, *parts)


def _llm_seconds(stats: StageStats) -> float:
    """What the LLM stages cost to make the table (stage 0, shared by every table, aside)."""
    parts = (stats.categories_seconds, stats.llm_load_seconds, stats.sft_seconds)
    return float(sum((*parts, stats.embed_seconds)))


def downstream(
    cfg: Config, dataset: SequenceDataset, table_path: Path, key2: str, progress: bool
) -> list[ComparisonRow]:
    """Plain and enhanced versions of each backbone, same hyper-parameters and seed; `key2`
    names the table (`item_table`'s key) in the enhanced runs' names."""
    table, _ = load_item_embeddings(table_path)
    rows = []
    for name in cfg.enhance.backbones:
        backbone_cfg = cfg.for_backbone(name)
        start = time.perf_counter()
        plain = train_and_evaluate(backbone_cfg, dataset, progress=progress)
        plain_seconds = time.perf_counter() - start
        mode, adapter_start = cfg.enhance.mode, cfg.enhance.adapter_start
        set_seed(backbone_cfg.train.seed)
        model = backbone_cfg.model  # with this backbone's own settings, as the plain one had
        embedding, spec = enhanced_item_embedding(
            mode, table, model.hidden_size, model.dropout, adapter_start
        )
        if adapter_start != "default":  # runs made before the option keep their names and keys
            mode = f"{mode}-{adapter_start}"
        if (features := cfg.augment.features) != "hidden":  # what stage 2 read out
            mode, spec = f"{mode}-{features}", {**spec, "features": features}
        tag = f"{name}-{cfg.enhance.table}-{mode}-{key2}"  # the table and the stage behind it
        meta = {"item_embedding": spec, "stage2": key2}
        start = time.perf_counter()
        enhanced = train_and_evaluate(
            backbone_cfg, dataset, item_embedding=embedding, tag=tag, meta=meta, progress=progress
        )
        enhanced_seconds = time.perf_counter() - start
        plain_dir, enhanced_dir = run_dir(backbone_cfg), run_dir(backbone_cfg, tag)
        test = paired_test_of_runs(plain_dir, enhanced_dir)
        views = paired_views(plain_dir, enhanced_dir, list(VIEWS[1:]))
        rows.append(
            ComparisonRow(
                backbone=name,
                mode=mode,
                table=cfg.enhance.table,
                plain=plain.test,
                enhanced=enhanced.test,
                plain_train_seconds=plain_seconds,
                enhanced_train_seconds=enhanced_seconds,
                paired_test=test,
                paired_test_views=views,  # tail targets, sampled negatives: NDCG@10
                plain_dir=str(plain_dir),
                enhanced_dir=str(enhanced_dir),
            )
        )
    return rows


def run_tslrec(cfg: Config, progress: bool = True) -> RunResults:
    """All stages; returns (and writes to output_dir/results.json) the comparison and costs."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = load_dataset(cfg)
    timings["data"] = time.perf_counter() - start

    start = time.perf_counter()
    stage0_record, item_embeddings = stage0(cfg, dataset, progress)
    timings["stage0_sasrec"] = time.perf_counter() - start

    start = time.perf_counter()
    table_path, stages, table_key = item_table(cfg, dataset, item_embeddings)
    timings["stage1_2_llm"] = time.perf_counter() - start

    start = time.perf_counter()
    rows = downstream(cfg, dataset, table_path, table_key, progress)
    timings["downstream"] = time.perf_counter() - start
    results = RunResults(
        dataset=cfg.data.name,
        dataset_stats=dataset.stats(),
        llm=cfg.llm.model,
        protocol=cfg.eval.describe(),
        tail_rule=f"targets with fewer than {cfg.eval.tail_below} training interactions",
        rows=rows,
        stages=stages,
        stage0=Stage0Summary.model_validate(stage0_record, from_attributes=True),
        wall_seconds_this_run=timings,
    )
    if process_state().is_main_process:
        results.save(cfg.output_dir / RESULTS)
        save_config(cfg, cfg.output_dir / RUN_CONFIG)
        with atomic_path(cfg.output_dir / RESULTS_MD) as tmp:
            tmp.write_text(results_markdown(results) + "\n")
    return results


def _loss_against_mean(sft: SftStats) -> str:
    """The last epoch's training loss next to the loss of predicting the mean target."""
    last = f"last-epoch loss {sft.epoch_losses[-1]:.3g}"
    return f"{last}, against {sft.mean_target_loss:.3g} for the mean target"


def _memory(stages: StageStats) -> str:
    """The LLM stages' peak memory growth (host memory)."""
    return f", peak memory +{stages.memory.peak_growth_mib:.0f} MiB (stages 1-2)"


def results_markdown(results: RunResults) -> str:
    """The plain-vs-enhanced table at every `eval.ks` cut-off, ready to paste, and the cost of
    each stage."""
    header, body = comparison_table(results)
    lines = [
        f"TSLRec on {results.dataset} with {results.llm} ({results.protocol})",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    lines += [
        "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|" for cells in body
    ]
    header, body = views_table(results)
    if body:
        lines += ["", f"By test target and protocol (tail: {results.tail_rule or ''}):"]
        lines += ["", "| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    stages, stage0_summary = results.stages, results.stage0
    sft = stages.sft
    lines += [
        "",
        f"Stage 0 (SASRec pre-training): {stage0_summary.seconds:.0f} s "
        f"({stage0_summary.seconds_per_epoch:.1f} s/epoch).",
        f"Stage 1 ({sft.level}-level SFT): {sft.samples} samples, {sft.epochs} epochs, "
        f"{sft.steps} steps, {sft.seconds:.0f} s{_memory(stages)}; "
        f"K = {stages.categories_k}; {_loss_against_mean(sft)}.",
        f"Stage 2 (item embeddings): {stages.embed.items} items, "
        f"{stages.embed.items_per_second:.1f} items/s, {stages.embed_seconds:.0f} s.",
        *transmission_lines(stages.transmission),
        "This run's wall time per stage (cached stages take ~0 s): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in results.wall_seconds_this_run.items())
        + ".",
    ]
    return "\n".join(lines)
