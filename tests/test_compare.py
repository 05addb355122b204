"""The control tables and `tslrec compare`: same shape and path as TSLRec's table, seeded, and a
verdict computed from the figures."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tslrec.cli import app
from tslrec.config import save_config
from tslrec.evaluation.formatting import compare_table, verdict
from tslrec.llm.augment import load_item_embeddings
from tslrec.llm.controls import TABLES, category_table, random_table
from tslrec.pipeline.tslrec import item_table, run_tslrec, stage0
from tslrec.records import CompareRow
from tslrec.reporting import write_report


def test_a_random_table_keeps_the_shape_and_column_statistics_under_its_seed():
    torch.manual_seed(0)
    like = torch.zeros(201, 6)
    like[1:] = torch.randn(200, 6) * torch.arange(1, 7) + torch.arange(6)
    table = random_table(like, seed=3)
    assert table.shape == like.shape and table.dtype == torch.float32
    assert torch.equal(table[0], torch.zeros(6))
    assert torch.equal(table, random_table(like, seed=3))
    assert not torch.equal(table, random_table(like, seed=4))
    spread = like[1:].std(0)
    assert ((table[1:].mean(0) - like[1:].mean(0)).abs() < 0.35 * spread).all()
    assert torch.allclose(table[1:].std(0), like[1:].std(0), rtol=0.2)
    assert torch.corrcoef(torch.stack([table[1:, 5], like[1:, 5]]))[0, 1].abs() < 0.25


def test_a_category_table_is_each_items_one_hot():
    labels = torch.tensor([-1, 2, 0, 2, 1])  # item i's category; padding has none
    table = category_table(labels, k=3)
    assert table.tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_every_control_has_the_tslrec_tables_rows_and_goes_through_the_same_embedding(
    pipeline_config,
):
    from tslrec.pipeline.train import load_dataset
    from tslrec.pipeline.tslrec import downstream

    cfg = pipeline_config(enhance={"backbones": ["sasrec"], "mode": "fusion"})
    dataset = load_dataset(cfg)
    _, stage0_table = stage0(cfg, dataset, progress=False)
    paths, keys, samples = {}, {}, {}
    for name in ("tslrec", "llm-raw", "random", "categories", "instance"):
        table_cfg = cfg.model_copy(
            update={"enhance": cfg.enhance.model_copy(update={"table": name})}
        )
        paths[name], stats, keys[name] = item_table(table_cfg, dataset, stage0_table)
        assert stats.table_seconds >= 0.0 and stats.table_memory_mib >= 0.0
        samples[name] = stats.sft.samples
        row = downstream(table_cfg, dataset, paths[name], keys[name], progress=False)[0]
        record = json.loads((Path(row.enhanced_dir) / "results.json").read_text())
        assert record["item_embedding"] == {
            "mode": "fusion",
            "external_dim": row_width(paths[name]),
        }
        assert name in row.enhanced_dir and row.table == name
    tables = {name: load_item_embeddings(p)[0] for name, p in paths.items()}
    rows = dataset.num_items + 1
    assert {t.size(0) for t in tables.values()} == {rows}
    assert tables["random"].shape == tables["tslrec"].shape == tables["instance"].shape
    assert not torch.equal(tables["instance"], tables["tslrec"])  # another fine-tuning
    assert samples["instance"] == samples["tslrec"] == 54  # at equal compute: one per user
    assert tables["categories"].shape == (rows, 4)
    assert all(torch.equal(t[0], torch.zeros(t.size(1))) for t in tables.values())
    assert len(set(keys.values())) == 5  # each table's runs have names of their own
    again, _, _ = item_table(
        cfg.model_copy(update={"enhance": cfg.enhance.model_copy(update={"table": "random"})}),
        dataset,
        stage0_table,
    )
    assert torch.equal(load_item_embeddings(again)[0], tables["random"])


def test_the_instance_table_trains_as_many_prefixes_as_user_level_has_users(pipeline_config):
    from tslrec.pipeline.train import load_dataset
    from tslrec.pipeline.tslrec import instance_config

    cfg = pipeline_config()
    dataset = load_dataset(cfg)  # 60 users with training items, 10% held out
    instance = instance_config(cfg, dataset)
    assert (instance.sft.level, instance.sft.max_samples) == ("instance", 54)
    assert instance.sft.model_copy(update={"level": "user", "max_samples": None}) == cfg.sft
    capped = instance_config(pipeline_config(sft={"max_samples": 20}), dataset)
    assert capped.sft.max_samples == 20


def row_width(path: Path) -> int:
    return load_item_embeddings(path)[0].size(1)


def _row(table: str, ndcg: float, p_plain: float, p_best: float | None, best: str) -> CompareRow:
    row = {"backbone": "sasrec", "table": table, "seeds": 3, "NDCG@10_mean": ndcg}
    row |= {"NDCG@10_std": 0.001, "HR@10_mean": 2 * ndcg, "HR@10_std": 0.002}
    row |= {"train_seconds": 10.0, "best_control": best}
    if table != "plain":
        row |= {"change_NDCG@10_%": 100 * (ndcg / 0.05 - 1), "p_vs_plain": p_plain}
        row |= {"table_seconds": 600.0 if table == "tslrec" else 1.0}
        row |= {"table_memory_mib": 812.4 if table == "tslrec" else 0.2}
        if p_best is not None:
            row["p_vs_best_control"] = p_best
    return CompareRow.model_validate(row)


def test_the_verdict_follows_from_the_figures():
    rows = [
        _row("plain", 0.05, 1.0, None, "categories"),
        _row("tslrec", 0.05205, 0.01, 0.4, "categories"),
        _row("random", 0.0505, 0.5, 0.2, "categories"),
        _row("categories", 0.0515, 0.04, None, "categories"),
    ]
    assert verdict(rows) == (
        "sasrec: TSLRec +4.1% over plain (p = 0.01), but not better than `categories` "
        "(+1.1%, p = 0.4)."
    )
    rows[1] = _row("tslrec", 0.06, 0.001, 0.003, "categories")
    assert verdict(rows) == (
        "sasrec: TSLRec +20.0% over plain (p = 0.001), and better than `categories` "
        "(+16.5%, p = 0.003)."
    )
    rows[1] = _row("tslrec", 0.049, 0.3, 0.01, "categories")
    assert verdict(rows).startswith("sasrec: TSLRec -2.0% over plain (p = 0.3, not significant)")
    assert "but not better than `categories` (-4.9%, p = 0.01)" in verdict(rows)
    table = compare_table(rows).splitlines()
    assert table[0].startswith("| backbone | table | NDCG@10 | HR@10 | tail NDCG@10 | vs plain |")
    assert table[3] == (
        "| sasrec | tslrec | 0.0490 ± 0.0010 | 0.0980 ± 0.0020 | - | -2.0% | 0.3 "
        "| 0.01 (categories) | 600 | 812 | 10 |"
    )


def test_compare_runs_a_grid_over_tables_and_prints_the_verdict(pipeline_config, tmp_path):
    cfg = pipeline_config(enhance={"backbones": ["sasrec"], "mode": "fusion"})
    path = tmp_path / "cfg.yaml"
    save_config(cfg, path)
    result = CliRunner().invoke(
        app,
        ["compare", "-c", str(path), "--tables", "tslrec,random,categories", "--seeds", "42,7"],
    )
    assert result.exit_code == 0, result.output
    out = cfg.output_dir.parent / "experiments" / f"compare-{cfg.data.name}"
    saved = json.loads((out / "compare.json").read_text())
    assert [r["table"] for r in saved["rows"]] == ["plain", "tslrec", "random", "categories"]
    assert all(r["seeds"] == 2 for r in saved["rows"])
    assert saved["verdict"].startswith("sasrec: TSLRec ") and saved["verdict"] in result.output
    assert saved["rows"][1]["best_control"] in ("random", "categories")
    assert (out / "compare.md").read_text().count("| sasrec |") == 4
    # the run's report shows the same table and verdict
    run_tslrec(cfg, progress=False)
    page = write_report(cfg.output_dir).read_text()
    assert "Is the LLM worth it?" in page and html.escape(saved["verdict"]) in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tables", "tslrec,bogus"], "--tables: unknown 'bogus'"),
        (["--seeds", "42,x"], "--seeds must be comma-separated integers"),
        (["--backbones", "lstm"], "--backbones: unknown 'lstm'"),
        (["--tables", ","], "--tables needs at least one value"),
    ],
)
def test_compare_refuses_bad_options_before_any_work(tmp_path, args, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}))
    result = CliRunner().invoke(app, ["compare", "-c", str(path), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "run").exists()
    assert set(TABLES) >= {"tslrec", "random"}
