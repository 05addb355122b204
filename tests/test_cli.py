import yaml
from synthetic import cyclic_sequences, tiny_config, write_interactions_csv
from typer.testing import CliRunner

from tslrec.cli import app

runner = CliRunner()


def _flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def _config_file(tmp_path):
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())
    cfg = tiny_config(tmp_path, csv, train={"epochs": 20})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_prepare_train_evaluate_recommend(tmp_path):
    cfg = _config_file(tmp_path)
    result = runner.invoke(app, ["data", "prepare", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert '"users": 60' in result.output
    assert runner.invoke(app, ["data", "stats", "-c", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["train", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "models" / "sasrec" / "config.yaml").is_file()
    full = runner.invoke(app, ["evaluate", "-c", str(cfg)])
    sampled = runner.invoke(app, ["evaluate", "-c", str(cfg), "-s", "eval.protocol=sampled"])
    assert sampled.exit_code == 0 and "sampled ranking" in sampled.output
    assert "full ranking" in full.output  # the ranks themselves: test_metrics.py
    # the cycle says i5 follows i4: a trained model recommends it first for a new user
    result = runner.invoke(app, ["recommend", "-c", str(cfg), "--items", "i2,i3,i4", "-k", "3"])
    assert result.exit_code == 0, result.output
    first_row = next(line for line in result.output.splitlines() if line.strip().startswith("│ 1"))
    assert "i5" in first_row
    # a history longer than max_len (10): every item in it is excluded, not only the last 10;
    # with 15 of the 20 items seen, only the other 5 are left to list
    seen = [f"i{i}" for i in range(1, 16)]
    result = runner.invoke(app, ["recommend", "-c", str(cfg), "--items", ",".join(seen), "-k", "8"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[2].strip() for line in result.output.splitlines() if "│" in line]
    assert sorted(rows) == [f"i{i}" for i in range(16, 21)]
    zero = runner.invoke(app, ["recommend", "-c", str(cfg), "--items", "i2", "-k", "0"])
    # click's usage error; its wording of the range differs between versions
    assert zero.exit_code == 2 and "Invalid value for '-k'" in zero.output


def test_bad_config_key_exits_non_zero_with_the_key_named(tmp_path):
    cfg = _config_file(tmp_path)
    result = runner.invoke(app, ["train", "-c", str(cfg), "-s", "train.epochz=3"])
    assert result.exit_code == 2
    assert "unknown key 'train.epochz'" in result.output


def test_recommend_without_training_says_what_to_do(tmp_path):
    cfg = _config_file(tmp_path)
    result = runner.invoke(app, ["recommend", "-c", str(cfg), "--user", "u1"])
    assert result.exit_code == 2 and "run `tslrec train`" in _flat(result.output)


def test_bad_data_file_exits_non_zero_naming_file_and_line(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("user,item,ts\nu1,i1,100\nu1,i2,yesterday\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(tmp_path / "run"),
                "data": {
                    "format": "table",
                    "path": str(csv),
                    "columns": {"user": "user", "item": "item", "timestamp": "ts"},
                },
            }
        )
    )
    result = runner.invoke(app, ["data", "prepare", "-c", str(cfg)])
    assert result.exit_code == 2
    assert "bad.csv" in result.output and "line 3" in result.output and "'ts'" in result.output
    assert not (tmp_path / "run" / "data").exists()


def test_evaluate_refuses_a_model_trained_under_other_settings(tmp_path):
    cfg = _config_file(tmp_path)
    assert runner.invoke(app, ["train", "-c", str(cfg), "-s", "train.epochs=1"]).exit_code == 0
    result = runner.invoke(
        app, ["evaluate", "-c", str(cfg), "-s", "train.epochs=1", "-s", "train.lr=0.5"]
    )
    assert result.exit_code == 2 and "other 'train' settings" in _flat(result.output)
    # settings that do not change the trained model are no reason to refuse it
    threads = ["-s", "train.epochs=1", "-s", "train.num_threads=2"]  # trained with 1
    assert runner.invoke(app, ["evaluate", "-c", str(cfg), *threads]).exit_code == 0


def test_evaluate_refuses_a_training_that_has_not_finished(tmp_path):
    cfg = _config_file(tmp_path)
    assert runner.invoke(app, ["train", "-c", str(cfg), "-s", "train.epochs=1"]).exit_code == 0
    (tmp_path / "run" / "models" / "sasrec" / "results.json").unlink()  # as while it trains
    result = runner.invoke(app, ["evaluate", "-c", str(cfg), "-s", "train.epochs=1"])
    assert result.exit_code == 2 and "no finished training" in _flat(result.output)
