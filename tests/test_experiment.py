"""`tslrec experiment`: a grid over K and seeds on the tiny pipeline, into one tidy table."""

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from tslrec.cli import app
from tslrec.config import load_experiment, save_config
from tslrec.errors import ConfigError
from tslrec.pipeline.experiment import run_experiment, summarize
from tslrec.provenance import git_commit


@pytest.fixture()
def experiment_file(tmp_path, pipeline_config):
    cfg = pipeline_config()
    save_config(cfg, tmp_path / "tiny.yaml")
    spec = {
        "name": "k-grid",
        "configs": [str(tmp_path / "tiny.yaml")],
        "backbones": ["sasrec"],
        "seeds": [42, 7],
        "grid": {"key": "categories.k", "values": [3, 4]},
        "output_dir": str(tmp_path / "experiments"),
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, cfg


def test_experiment_runs_every_cell_once_and_writes_a_tidy_table(experiment_file):
    path, cfg = experiment_file
    results = run_experiment(load_experiment(path))
    # 2 values of K x 2 seeds x 1 backbone x plain/enhanced
    assert results.height == 8
    assert set(results["grid_value"]) == {"3", "4"} and set(results["seed"]) == {42, 7}
    plain = results.filter(pl.col("variant") == "plain")
    enhanced = results.filter(pl.col("variant") == "enhanced")
    # plain models do not depend on K: one per seed, and the config's seed is stage 0 itself
    assert plain.group_by("seed").agg(pl.col("model_dir").n_unique())["model_dir"].to_list() == [
        1,
        1,
    ]
    assert str(cfg.output_dir / "models" / "sasrec") in set(plain["model_dir"])
    assert enhanced["model_dir"].n_unique() == 4
    # each row names the code that trained its model, as the model's own record keeps it
    assert results["trained_commit"].to_list() == [git_commit()] * 8
    seven = json.loads(results.filter(pl.col("seed") == 7)["settings"][0])
    assert seven["train"]["seed"] == 7 and seven["output_dir"].endswith("seed-7")

    out = cfg.output_dir.parent / "experiments" / "k-grid"
    assert pl.read_parquet(out / "results.parquet").equals(results)
    from_csv = pl.read_csv(out / "results.csv")
    assert np.allclose(from_csv["NDCG@10"].to_numpy(), results["NDCG@10"].to_numpy())

    summary = pl.read_parquet(out / "summary.parquet")
    assert summary.height == 2
    k3 = plain.filter(pl.col("grid_value") == "3")["NDCG@10"].to_numpy()
    row = summary.filter(pl.col("grid_value") == "3").row(0, named=True)
    assert row["seeds"] == 2
    assert row["plain_NDCG@10_mean"] == pytest.approx(k3.mean())
    assert row["plain_NDCG@10_std"] == pytest.approx(abs(k3[0] - k3[1]) / np.sqrt(2))
    assert row["paired_users"] == 60
    assert "| dataset | categories.k | backbone |" in (out / "summary.md").read_text()
    # full ranking scored the sampled protocol beside it; no item here is tail (< 4 interactions)
    sampled = plain.filter(pl.col("grid_value") == "3")["sampled_NDCG@10"].to_numpy()
    assert row["plain_sampled_NDCG@10_mean"] == pytest.approx(sampled.mean())
    assert row["paired_sampled_users"] == 60 and row["tail_users"] == 0
    assert "paired_tail_ttest_p" not in row
    assert "| sampled negatives, all users | 60 |" in (out / "summary.md").read_text()
    assert summarize(results).equals(summary)


def test_experiment_command_reuses_every_cached_run(experiment_file):
    path, _ = experiment_file
    first = run_experiment(load_experiment(path))
    # a row names the commit its model was trained by, as that model's record says
    record_file = Path(first["model_dir"][0]) / "results.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "git_commit": "abc123"}))
    outcome = CliRunner().invoke(app, ["experiment", "--config", str(path)])
    assert outcome.exit_code == 0, outcome.output
    again = pl.read_parquet(path.parent / "experiments" / "k-grid" / "results.parquet")
    assert again["NDCG@10"].to_list() == first["NDCG@10"].to_list()
    assert again["train_seconds"].to_list() == first["train_seconds"].to_list()
    tampered = again.filter(pl.col("model_dir") == first["model_dir"][0])["trained_commit"]
    assert set(tampered) == {"abc123"}


def test_one_seed_of_an_experiment_gets_its_own_tables_and_the_shared_trainings(experiment_file):
    path, _ = experiment_file
    full = run_experiment(load_experiment(path))
    outcome = CliRunner().invoke(app, ["experiment", "--config", str(path), "--seed", "7"])
    assert outcome.exit_code == 0, outcome.output
    subset = pl.read_parquet(path.parent / "experiments" / "k-grid-seeds-7" / "results.parquet")
    seven = full.filter(pl.col("seed") == 7)
    assert subset["seed"].to_list() == [7] * 4
    assert subset["model_dir"].to_list() == seven["model_dir"].to_list()
    assert subset["train_seconds"].to_list() == seven["train_seconds"].to_list()  # not retrained
    # the full experiment's own tables are untouched
    again = pl.read_parquet(path.parent / "experiments" / "k-grid" / "results.parquet")
    assert again.equals(full)

    outcome = CliRunner().invoke(app, ["experiment", "--config", str(path), "--seed", "5"])
    assert outcome.exit_code == 2
    assert "experiment 'k-grid': seeds [5] are not among [42, 7]" in outcome.output


def test_a_grid_over_backbone_settings_is_refused_with_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    grid = {"key": "model.hidden_size", "values": [8]}
    path.write_text(yaml.safe_dump({"name": "x", "configs": ["a.yaml"], "grid": grid}))
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'grid.key'.*LLM stages"):
        load_experiment(path)


def test_a_stage_2_grid_shares_stage_1_and_reports_its_cost_in_every_cell(experiment_file):
    path, _ = experiment_file
    spec = yaml.safe_load(path.read_text())
    spec.update(
        name="pooling", seeds=[42], grid={"key": "augment.pooling", "values": ["last", "mean"]}
    )
    path.write_text(yaml.safe_dump(spec))
    cells = run_experiment(load_experiment(path)).filter(pl.col("variant") == "enhanced")
    assert cells["model_dir"].n_unique() == 2  # each pooling its own table and models ...
    assert cells["sft_seconds"].n_unique() == 1 and cells["sft_seconds"][0] > 0  # ... once tuned


def test_the_commit_is_dirty_for_changed_code_not_for_changed_figures(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("code.py", "benchmarks/results/a.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks/results/a.json").write_text("2")
    assert not git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("2")
    assert git_commit().endswith("-dirty")


def test_two_configs_of_one_dataset_are_refused_before_anything_trains(experiment_file):
    """The summary groups by dataset: two configs of ML-100K would pool into one mean."""
    path, cfg = experiment_file
    spec = yaml.safe_load(path.read_text())
    twin = path.parent / "twin.yaml"
    twin.write_text(Path(spec["configs"][0]).read_text())
    spec["configs"].append(str(twin))
    path.write_text(yaml.safe_dump(spec))
    message = f"tiny.yaml and {twin} are both dataset '{cfg.data.name}'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_experiment(load_experiment(path))
    assert not (cfg.output_dir / "models").exists()
