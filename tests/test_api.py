"""The public face: tslrec.Dataset from a DataFrame or config, tslrec.Recommender fit to load."""

import numpy as np
import polars as pl
import pytest
import torch
from synthetic import cyclic_frame, cyclic_sequences, tiny_config, write_interactions_csv

import tslrec
from tslrec.errors import ConfigError, DataError, TslrecError
from tslrec.io import save_tensors
from tslrec.llm.augment import TENSOR_NAME
from tslrec.models.item_embedding import build_item_embedding
from tslrec.pipeline.train import load_dataset, train_and_evaluate

TINY = {"hidden_size": 16, "num_layers": 1, "max_len": 10, "dropout": 0.1, "lr": 0.01}
TINY |= {"batch_size": 16, "patience": 50, "num_threads": 1}


@pytest.fixture()
def cyclic(tmp_path):
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())
    return tiny_config(tmp_path, csv, train={"epochs": 15})


def _same_data(a, b) -> None:
    assert a.users == b.users and a.items == b.items and a.titles == b.titles
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences, strict=True))
    assert np.array_equal(a.valid_negatives, b.valid_negatives)
    assert np.array_equal(a.test_negatives, b.test_negatives)
    assert a.manifest["content_hash"] == b.manifest["content_hash"]


def test_a_frame_gives_the_dataset_its_csv_file_gives(cyclic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_disk = load_dataset(cyclic)
    before = sorted(tmp_path.rglob("*"))
    frame = tslrec.Dataset.from_frame(
        cyclic_frame(), user="user", item="item", timestamp="ts", k_core=3, num_sampled_negatives=10
    )
    in_memory = tslrec.Dataset.from_config(cyclic)
    assert sorted(tmp_path.rglob("*")) == before  # neither wrote anything
    _same_data(frame, on_disk)
    _same_data(in_memory, on_disk)
    assert frame.path is None and frame.manifest["source"] == "DataFrame"


def test_a_frame_with_item_text_and_datetimes(tmp_path):
    frame = cyclic_frame().with_columns(pl.from_epoch("ts", time_unit="s").alias("when"))
    items = pl.DataFrame({"item": [f"i{i}" for i in range(1, 21)]}).with_columns(
        name=pl.lit("Item ") + pl.col("item"), colour=pl.lit("red")
    )
    ds = tslrec.Dataset.from_frame(
        frame, user="user", item="item", timestamp="when", items=items, title="name",
        attributes=["colour"], k_core=3,
    )  # fmt: skip
    assert ds.has_text and ds.titles[ds.item_index("i7")] == "Item i7"
    assert ds.attributes[1] == "colour: red"


def test_a_bad_frame_names_the_column_or_setting():
    with pytest.raises(DataError, match="missing column 'timestamp'"):
        tslrec.Dataset.from_frame(cyclic_frame(), user="user", item="item")
    bad = cyclic_frame().with_columns(pl.col("ts").cast(pl.String).replace("1003", "soon"))
    with pytest.raises(DataError, match="DataFrame, column 'ts': row 4: got 'soon'"):
        tslrec.Dataset.from_frame(bad, user="user", item="item", timestamp="ts")
    with pytest.raises(ConfigError, match=r"unknown key 'data\.kcore'"):
        tslrec.Dataset.from_frame(cyclic_frame(), user="user", item="item", kcore=3)
    with pytest.raises(DataError, match="expected a pandas or polars DataFrame"):
        tslrec.Dataset.from_frame([("u1", "i1", 1)])


def test_a_pandas_frame_is_read_like_a_polars_one():
    pd = pytest.importorskip("pandas")
    frame = cyclic_frame()
    pandas = pd.DataFrame({column: frame[column].to_list() for column in frame.columns})
    args = {"user": "user", "item": "item", "timestamp": "ts", "k_core": 3}
    _same_data(tslrec.Dataset.from_frame(pandas, **args), tslrec.Dataset.from_frame(frame, **args))


def test_fit_gives_the_model_tslrec_train_gives(cyclic):
    dataset = load_dataset(cyclic)
    record = train_and_evaluate(cyclic, dataset, progress=False)
    model = tslrec.Recommender(config=cyclic, progress=False).fit(dataset)
    assert model.result.best_epoch == record.best_epoch
    assert model.evaluate("test") == {k: record.test[k] for k in model.evaluate("test")}


def test_fit_with_an_item_table_gives_the_pipelines_enhanced_model(cyclic):
    dataset = load_dataset(cyclic)
    table = torch.randn(dataset.num_items + 1, 12, generator=torch.Generator().manual_seed(0))
    table[0] = 0
    cfg = cyclic.for_backbone("gru4rec")
    torch.manual_seed(cfg.train.seed)  # as the pipeline's downstream stage builds it
    embedding = build_item_embedding("fusion", table, cfg.model.hidden_size, cfg.model.dropout)
    meta = {"item_embedding": {"mode": "fusion", "external_dim": 12}}
    record = train_and_evaluate(
        cfg, dataset, item_embedding=embedding, tag="enhanced", meta=meta, progress=False
    )
    model = tslrec.Recommender("gru4rec", config=cyclic, item_table=table, progress=False)
    model.fit(dataset)
    assert model.result.best_valid == record.best_valid_ndcg
    assert model.evaluate("test")["NDCG@10"] == record.test["NDCG@10"]
    with pytest.raises(TslrecError, match="was it made on another dataset"):
        tslrec.Recommender(item_table=table[:-1], progress=False).fit(dataset)


def test_recommend_on_external_ids_and_the_round_trip(tmp_path):
    dataset = tslrec.Dataset.from_frame(
        cyclic_frame(), user="user", item="item", timestamp="ts", k_core=3
    )
    model = tslrec.Recommender("sasrec", epochs=20, progress=False, **TINY).fit(dataset)
    new = model.recommend(sequences=[["i2", "i3", "i4"], [f"i{i}" for i in range(1, 16)]], k=8)
    assert new.columns == ["sequence", "rank", "item", "title", "score"]
    first = new.filter(pl.col("sequence") == 0)
    assert first["item"][0] == "i5" and first["rank"].to_list() == list(range(1, 9))
    # the second sequence saw 15 of the 20 items: only the other 5 are offered
    assert sorted(new.filter(pl.col("sequence") == 1)["item"]) == [f"i{i}" for i in range(16, 21)]
    known = model.recommend(["u0", "u3"], k=3)
    assert known["user"].to_list() == ["u0"] * 3 + ["u3"] * 3
    seen = set(dataset.items[i] for i in dataset.sequences[dataset.user_index("u0")])
    assert not seen & set(known.filter(pl.col("user") == "u0")["item"])
    alone = model.recommend("u0", k=3)  # in a batch of one: the same up to float rounding
    assert alone.drop("score").equals(known.head(3).drop("score"))
    assert alone["score"].to_numpy() == pytest.approx(known["score"][:3].to_numpy(), rel=1e-5)

    loaded = tslrec.Recommender.load(model.save(tmp_path / "saved"))
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "histories.safetensors",
        "model.json",
        "model.safetensors",
        "recommender.json",
    ]
    assert loaded.config == model.config and model.config.data.columns.timestamp == "ts"
    assert loaded.recommend(["u0", "u3"], k=3).equals(known)
    full = loaded.evaluate("test")  # no sampled negatives are saved: full ranking only
    assert full == {name: model.evaluate("test")[name] for name in full}
    sampled = loaded.config.eval.model_copy(update={"protocol": "sampled"})
    loaded.config = loaded.config.model_copy(update={"eval": sampled})
    with pytest.raises(TslrecError, match="a loaded recommender keeps no sampled negatives"):
        loaded.evaluate("test")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(TslrecError, match="holds no saved recommender"):
        model.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="unknown item id 'i99'"):
        loaded.recommend(sequences=[["i1", "i99"]])
    with pytest.raises(DataError, match="unknown user id 'nobody'"):
        loaded.recommend(["nobody"])


def test_an_enhanced_recommender_round_trips(tmp_path):
    dataset = tslrec.Dataset.from_frame(
        cyclic_frame(), user="user", item="item", timestamp="ts", k_core=3
    )
    table = torch.randn(dataset.num_items + 1, 24)  # init mode: at least hidden_size columns
    path = tmp_path / "table.safetensors"
    save_tensors(path, {TENSOR_NAME: table})  # as stage 2 writes it
    for mode in ("init", "adapter", "fusion"):
        settings = {**TINY, "epochs": 2, "mode": mode}
        model = tslrec.Recommender("bert4rec", item_table=path, progress=False, **settings)
        model.fit(dataset)
        loaded = tslrec.Recommender.load(model.save(tmp_path / mode))
        assert loaded.recommend(["u1"], k=5).equals(model.recommend(["u1"], k=5)), mode


def test_fit_checks_the_sampled_protocol_before_any_epoch():
    seen = {"u0": "abcd", "u1": "abc", "u2": "bcd", "u3": "acd"}  # u0 has seen all 4 items
    rows = [(u, i, t) for u, items in seen.items() for t, i in enumerate(items)]
    frame = pl.DataFrame(rows, schema=["user", "item", "ts"], orient="row")
    dataset = tslrec.Dataset.from_frame(frame, user="user", item="item", timestamp="ts", k_core=3)
    model = tslrec.Recommender("sasrec", eval={"protocol": "sampled"}, progress=False, **TINY)
    with pytest.raises(TslrecError, match="user 'u0' has interacted with every one of the 4"):
        model.fit(dataset)
    assert model.result is None  # not one epoch ran


def test_settings_are_checked_and_an_unfitted_model_says_so():
    with pytest.raises(ConfigError, match="unknown setting 'epoch'"):
        tslrec.Recommender(epoch=3)
    with pytest.raises(ConfigError, match=r"train\.lr"):
        tslrec.Recommender(lr=-1)
    with pytest.raises(ConfigError, match="unknown backbone 'sasrek'"):
        tslrec.Recommender("sasrek")
    with pytest.raises(TslrecError, match="not fitted"):
        tslrec.Recommender().recommend(["u1"])
    with pytest.raises(ConfigError, match="mode applies to an item_table only"):
        tslrec.Recommender(mode="adapter")
    assert tslrec.Recommender("gru4rec", eval={"mask_seen": True}).config.eval.mask_seen


def test_tslrec_recommend_prints_what_the_recommender_gives(cyclic, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from tslrec.cli import app
    from tslrec.pipeline.train import load_trained

    dataset = load_dataset(cyclic)
    train_and_evaluate(cyclic, dataset, progress=False)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cyclic.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["recommend", "-c", str(path), "--user", "u7", "-k", "4"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.output.splitlines() if "│ " in line]
    printed = [[cell.strip() for cell in row] for row in rows if row[0].strip().isdigit()]
    face = tslrec.Recommender.from_model(load_trained(cyclic, dataset), dataset, cyclic)
    expected = face.recommend("u7", k=4)
    assert [row[1] for row in printed] == expected["item"].to_list()
    assert [row[3] for row in printed] == [f"{score:.3f}" for score in expected["score"]]
