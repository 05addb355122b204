import pytest

from tslrec.config import DataConfig, ExperimentConfig, load_config, load_experiment, only_seeds
from tslrec.errors import ConfigError


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.learning_rate'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_size: big\n")
    with pytest.raises(ConfigError, match=r"key 'model.hidden_size'"):
        load_config(path)


def test_a_config_that_is_not_utf8_is_named_with_the_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"train:\n  lr: 0.1 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"c.yaml: line 2, column 16: expected UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize("overrides", ["overrides: train.lr=0.1", "overrides:"])
def test_experiment_overrides_must_be_a_list(tmp_path, overrides):
    path = tmp_path / "e.yaml"
    path.write_text(f"name: e\nconfigs: [c.yaml]\n{overrides}\n")
    with pytest.raises(ConfigError, match=r"e.yaml: key 'overrides': Input should be a valid list"):
        load_experiment(path, ["train.epochs=1"])


def test_overrides_keep_yaml_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    cfg = load_config(path, ["train.lr=0.002", "eval.ks=[10, 1]", "model.name=gru4rec"])
    assert cfg.train.lr == 0.002 and cfg.eval.ks == [1, 10] and cfg.model.name == "gru4rec"


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).parents[1] / "configs"
    configs = sorted(root.glob("*.yaml"))
    experiments = sorted(root.glob("experiments/*.yaml"))
    assert configs and experiments, "configs/ should ship pipeline and experiment configs"
    for path in configs:
        load_config(path)
    for path in experiments:
        exp = load_experiment(path)
        assert all((root.parent / c).is_file() for c in exp.configs), path


def test_ks_must_include_the_early_stopping_cutoff():
    with pytest.raises(ConfigError, match=r"key 'eval.ks'.*include 10"):
        load_config(None, ["eval.ks=[5, 20]"])


def test_a_seed_subset_keeps_the_files_order_once_and_names_its_tables():
    exp = ExperimentConfig(name="grid", configs=["a.yaml"], seeds=[42, 43, 44])
    subset = only_seeds(exp, [44, 43, 44])
    assert subset.seeds == [43, 44] and subset.name == "grid-seeds-43-44"
    assert exp.seeds == [42, 43, 44] and exp.name == "grid"


def test_an_adapter_start_needs_fusion(tmp_path):
    with pytest.raises(ConfigError, match="adapter_start 'zero' applies to mode 'fusion' only"):
        load_config(None, ["enhance.mode=init", "enhance.adapter_start=zero"])
    assert load_config(None, ["enhance.adapter_start=zero"]).enhance.adapter_start == "zero"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("per_backbone.gru4rec.train.lr=-1", r"'per_backbone.gru4rec.train'.*lr: Input should be"),
        ("per_backbone.gru4rec.train.learning_rate=1", r"learning_rate: not a setting"),
        ("per_backbone.gru4rec.train.seed=1", r"seed: set by the run"),
        ("per_backbone.gru4rec.model.name=sasrec", r"name: set by the run"),
        ("per_backbone.gru5rec.train.lr=1", r"'per_backbone.gru5rec.\[key\]'"),
    ],
)
def test_a_bad_per_backbone_setting_is_named(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(None, [override])


def test_per_backbone_settings_reach_only_their_backbone_and_apply_once():
    cfg = load_config(None, ["train.lr=0.002", "per_backbone.gru4rec.train.lr=0.005"])
    gru4rec = cfg.for_backbone("gru4rec")
    assert (gru4rec.model.name, gru4rec.train.lr) == ("gru4rec", 0.005)
    assert gru4rec.for_backbone("gru4rec") == gru4rec  # resolved: nothing left to apply
    assert cfg.for_backbone("sasrec").train.lr == cfg.for_backbone("bert4rec").train.lr == 0.002
    assert cfg.for_backbone("sasrec").train == cfg.train  # untouched backbones: the same keys


@pytest.mark.parametrize(
    ("fmt", "path", "name"),
    [
        ("lcrec", "data/office/Office_Products.inter.json", "Office_Products"),
        ("sequences", "Toys_and_Games.txt", "Toys_and_Games"),
        ("table", "logs/clicks.csv.gz", "clicks"),
        ("atomic", "ml/my-data.inter", "my-data"),
    ],
)
def test_a_users_files_name_the_run(fmt: str, path: str, name: str) -> None:
    assert DataConfig(format=fmt, path=path).name == name
    assert DataConfig(format=fmt, path=path, name="chosen").name == "chosen"
    assert DataConfig().name == "ml-100k"
