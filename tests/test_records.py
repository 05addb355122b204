"""The run records: each is written and read back as it was, under the keys its readers knew,
and a file that does not hold one is an error naming the file and the field."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tslrec.errors import TslrecError
from tslrec.records import (
    CompareReport,
    CompareRow,
    ComparisonRow,
    ModelRecord,
    Record,
    RunResults,
    SftStats,
    StageStats,
    TableStats,
    TrainingHistory,
)

TEST = {"split": "test", "protocol": "full", "mask_seen": False, "NDCG@10": 0.1, "HR@10": 0.2}
MODEL_KEYS = [
    "tag", "backbone", "dataset", "seed", "test", "best_epoch", "best_valid_NDCG@10",
    "epochs_run", "seconds", "seconds_to_best", "seconds_per_epoch", "peak_memory_mb",
    "settings_key", "processes", "git_commit",
]  # fmt: skip
STAGE_KEYS = [
    "stage1_key", "stage2_key", "categories_k", "category_sizes", "prompt", "llm_load_seconds",
    "categories_seconds", "untuned_embed_seconds", "untuned_memory", "sft", "sft_seconds",
    "embed_seconds", "embed", "transmission", "diagnostics_seconds", "memory",
]  # fmt: skip
SFT_KEYS = [
    "level", "samples", "epochs", "steps", "seconds", "seconds_per_epoch", "step_losses",
    "epoch_losses", "resumed_from_epoch", "mean_target_loss",
]  # fmt: skip
ROW_KEYS = [
    "backbone", "mode", "table", "plain", "enhanced", "plain_train_seconds",
    "enhanced_train_seconds", "paired_test_NDCG@10", "paired_test_views", "plain_dir",
    "enhanced_dir",
]  # fmt: skip
RUN_KEYS = [
    "dataset", "dataset_stats", "llm", "protocol", "tail_rule", "rows", "stages", "stage0",
    "wall_seconds_this_run",
]  # fmt: skip


def model_record(**changes: object) -> dict:
    record = dict.fromkeys(MODEL_KEYS, 1.5) | {"test": TEST, "git_commit": None}
    record |= {"tag": "sasrec", "backbone": "sasrec", "dataset": "d", "settings_key": "abc"}
    record |= {"seed": 42, "best_epoch": 3, "epochs_run": 5, "processes": 1}
    return record | changes


def sft_stats() -> dict:
    return {
        "level": "user",
        "samples": 54,
        "epochs": 2,
        "steps": 14,
        "seconds": 3.5,
        "seconds_per_epoch": [1.5, 2.0],
        "step_losses": [0.9, 0.5],
        "epoch_losses": [0.7, math.nan],  # an epoch with no batch: NaN, kept as NaN
        "resumed_from_epoch": 0,
        "mean_target_loss": 0.6,
    }


def stage_stats() -> dict:
    memory = {"peak_growth_mib": 12.0, "peak_rss_mib": 800.0}
    head = {"top1": 0.5, "top5": 0.9, "mean_rank": 1.8, "categories_predicted": 3}
    head |= {"majority_rate": 0.4, "top5_chance": 1.0}
    transmission = {
        "items": 20,
        "categories_k": 4,
        "head_one_item": head,
        "probes": {"stage0_sasrec": {"linear": 0.9, "knn": 0.8}},
        "heldout": {"users": 6, "loss": 0.5, "mean_target_loss": 0.6},
    }
    embed = {"items": 20, "computed": 20, "resumed": 0, "seconds": 0.0}
    return {
        "stage1_key": "k1",
        "stage2_key": "k2",
        "categories_k": 4,
        "category_sizes": [5, 5, 6, 4],
        "prompt": {"template_version": 3, "rendering": "title"},
        "llm_load_seconds": 1.0,
        "categories_seconds": 0.5,
        "untuned_embed_seconds": 2.0,
        "untuned_memory": memory,
        "sft": sft_stats(),
        "sft_seconds": 4.0,
        "embed_seconds": 2.5,
        "embed": embed | {"items_per_second": math.inf},  # no time measured
        "transmission": transmission,
        "diagnostics_seconds": 0.25,
        "memory": memory,
    }


def run_results() -> dict:
    paired = {"mean_diff": 0.01, "ttest_p": 0.04, "wilcoxon_p": 0.05, "users": 60}
    row = dict.fromkeys(ROW_KEYS, 2.0) | {"backbone": "sasrec", "mode": "adapter"}
    row |= {"table": "tslrec", "plain": TEST, "enhanced": TEST | {"NDCG@10": 0.12}}
    row |= {"paired_test_NDCG@10": paired, "paired_test_views": {"tail_": paired}}
    row |= {"plain_dir": "runs/x/models/sasrec", "enhanced_dir": "runs/x/models/sasrec-t"}
    return {
        "dataset": "d",
        "dataset_stats": {"users": 60, "items": 20, "interactions": 600},
        "llm": "tiny",
        "protocol": "full ranking",
        "tail_rule": "targets with fewer than 5 training interactions",
        "rows": [row],
        "stages": stage_stats() | {"table_seconds": 8.0, "table_memory_mib": 12.0},
        "stage0": {"best_epoch": 3, "seconds": 10.0, "seconds_per_epoch": 2.0},
        "wall_seconds_this_run": {"data": 0.1, "stage0_sasrec": 0.0},
    }


def compare_report() -> dict:
    plain = {"backbone": "sasrec", "table": "plain", "seeds": 2, "NDCG@10_mean": 0.05}
    plain |= {"NDCG@10_std": 0.001, "train_seconds": 10.0}
    tslrec = plain | {"table": "tslrec", "table_seconds": 600.0, "table_memory_mib": 812.0}
    tslrec |= {"change_NDCG@10_%": 4.0, "p_vs_plain": 0.01, "best_control": "random"}
    tslrec |= {"p_vs_best_control": 0.3}
    control = tslrec | {"table": "random", "best_control": None}
    del control["p_vs_best_control"]
    return {"rows": [plain, tslrec, control], "verdict": "sasrec: TSLRec +4.0% over plain."}


CASES = [
    (ModelRecord, model_record()),
    (ModelRecord, model_record(item_embedding={"mode": "fusion"}, stage2="k2")),
    (SftStats, sft_stats()),
    (StageStats, stage_stats()),
    (RunResults, run_results()),
    (CompareReport, compare_report()),
]


@pytest.mark.parametrize(("kind", "data"), CASES)
def test_a_record_written_and_read_back_is_the_same_record_and_the_same_file(
    tmp_path: Path, kind: type[Record], data: dict
) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(data, indent=2) + "\n")  # as the stages wrote their dicts
    record = kind.load(path)
    assert record.to_json().keys() == data.keys()  # in the same order
    record.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()
    assert kind.load(tmp_path / "again.json") == record


def test_the_files_hold_the_keys_their_readers_knew() -> None:
    assert list(ModelRecord.model_validate(model_record()).to_json()) == MODEL_KEYS
    assert list(SftStats.model_validate(sft_stats()).to_json()) == SFT_KEYS
    stages = StageStats.model_validate(stage_stats())
    assert list(stages.to_json()) == STAGE_KEYS
    table = TableStats.of(stages, 8.0, 12.0).to_json()
    assert list(table) == [*STAGE_KEYS, "table_seconds", "table_memory_mib"]
    results = RunResults.model_validate(run_results()).to_json()
    assert list(results) == RUN_KEYS and list(results["rows"][0]) == ROW_KEYS


def test_the_fields_are_read_under_their_names() -> None:
    record = ModelRecord.model_validate(model_record(**{"best_valid_NDCG@10": 0.3}))
    assert record.best_valid_ndcg == 0.3 and record.test["NDCG@10"] == 0.1
    assert record.item_embedding is None and record.stage2 is None
    results = RunResults.model_validate(run_results())
    row = results.rows[0]
    assert isinstance(row, ComparisonRow) and row.paired_test.ttest_p == 0.04
    assert row.paired_test_views["tail_"].users == 60
    assert results.stages.transmission.head_one_item.top5 == 0.9
    assert math.isinf(results.stages.embed.items_per_second)
    assert math.isnan(results.stages.sft.epoch_losses[1])


def test_a_compare_row_has_the_figures_it_scored_and_no_others() -> None:
    plain, tslrec, control = CompareReport.model_validate(compare_report()).rows
    assert plain.spread("NDCG@10") == (0.05, 0.001) and plain.spread("HR@10") is None
    assert "best_control" not in plain.to_json() and plain.p_vs_plain is None
    assert tslrec.change_ndcg == 4.0 and tslrec.p_vs_best_control == 0.3
    assert control.to_json()["best_control"] is None  # a table's row says none was compared
    assert isinstance(tslrec, CompareRow)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({k: v for k, v in model_record().items() if k != "settings_key"}, "settings_key"),
        (model_record(best_epoch="three"), "best_epoch"),
        (model_record(typo=1), "typo"),  # a misspelt field is not dropped silently
        ([model_record()], "the top level"),
    ],
)
def test_a_file_that_holds_no_record_is_an_error_naming_it_and_the_field(
    tmp_path: Path, data: object, field: str
) -> None:
    path = _write(tmp_path / "results.json", data)
    with pytest.raises(TslrecError, match=f"^{re.escape(str(path))}: not a valid ModelRecord"):
        ModelRecord.load(path)
    with pytest.raises(TslrecError, match=re.escape(f"({field}:")):
        ModelRecord.load(path)


def test_a_nested_field_is_named_by_its_path(tmp_path: Path) -> None:
    data = stage_stats()
    del data["sft"]["steps"]
    path = _write(tmp_path / "stages.json", data)
    with pytest.raises(TslrecError, match=re.escape(f"{path}: not a valid StageStats (sft.steps:")):
        StageStats.load(path)


def test_a_missing_or_damaged_record_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TslrecError, match=re.escape(f"{tmp_path / 'results.json'}: missing")):
        RunResults.load(tmp_path / "results.json")
    (tmp_path / "sft_stats.json").write_text('{"level": ')
    with pytest.raises(TslrecError, match=re.escape(f"{tmp_path / 'sft_stats.json'}: not valid")):
        SftStats.load(tmp_path / "sft_stats.json")


def test_a_training_history_is_a_json_list_of_epochs_read_back_as_written(tmp_path: Path) -> None:
    epochs = [
        {"epoch": 1, "loss": 9.5, "valid_NDCG@10": 0.01, "seconds": 2.0},
        {"epoch": 2, "loss": 8.25, "valid_NDCG@10": float("nan"), "seconds": 2.5},
    ]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(epochs, indent=2) + "\n")  # as the trainer wrote its dicts
    history = TrainingHistory.load(path)
    assert [e.epoch for e in history.root] == [1, 2] and history.root[0].valid_ndcg == 0.01
    assert math.isnan(history.root[1].valid_ndcg)  # a diverged epoch is kept as it was
    before = path.read_text()
    history.save(path)
    assert path.read_text() == before
    _write(path, [{**epochs[0], "valid_NDCG@10": "high"}])
    expected = f"{path}: not a valid TrainingHistory (0.valid_NDCG@10:"
    with pytest.raises(TslrecError, match=re.escape(expected)):
        TrainingHistory.load(path)
