import polars as pl
import pytest
from synthetic import cyclic_sequences, tiny_config, write_interactions_csv

from tslrec.config import DataConfig
from tslrec.data.dataset import SequenceDataset
from tslrec.data.prepare import _k_core, prepare_dataset
from tslrec.errors import DataError


def _table_cfg(path, **kw) -> DataConfig:
    return DataConfig(
        name="t",
        format="table",
        path=path,
        columns={"user": "user", "item": "item", "timestamp": "ts"},
        **kw,
    )


def test_k_core_reaches_the_fixed_point():
    # item c has 2 users; dropping it leaves user 3 with 1 item, which then drops item b for k=2
    df = pl.DataFrame(
        {"user": ["1", "1", "2", "2", "3", "3"], "item": ["a", "b", "a", "c", "c", "b"]}
    )
    kept = _k_core(df, 2)
    assert sorted(zip(kept["user"], kept["item"], strict=True)) == [
        ("1", "a"),
        ("1", "b"),
        ("2", "a"),
        ("2", "c"),
        ("3", "b"),
        ("3", "c"),
    ]
    assert _k_core(df, 3).height == 0


def test_prepare_orders_dedups_and_splits(tmp_path):
    csv = tmp_path / "x.csv"
    # user u0 rates i2 twice (kept once, the earliest); equal timestamps keep file order
    csv.write_text(
        "user,item,ts\nu0,i3,5\nu0,i1,1\nu0,i2,2\nu0,i2,9\nu0,i4,5\nu1,i1,1\nu1,i2,1\nu1,i3,1\n"
    )
    ds = prepare_dataset(_table_cfg(csv, k_core=0), tmp_path / "prep")
    seq0 = [ds.items[i] for i in ds.sequences[ds.user_index("u0")]]
    assert seq0 == ["i1", "i2", "i3", "i4"]
    u = ds.user_index("u0")
    assert [ds.items[i] for i in ds.train_sequences()[u]] == ["i1", "i2"]
    assert ds.items[ds.target(u, "valid")] == "i3" and ds.items[ds.target(u, "test")] == "i4"
    assert ds.num_items == 4 and ds.stats()["interactions"] == 7


def test_no_validation_or_test_item_leaks_into_training(tmp_path):
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())
    ds = prepare_dataset(tiny_config(tmp_path, csv).data, tmp_path / "prep")
    train = ds.train_sequences()
    for u in range(ds.num_users):
        full = ds.sequences[u]
        assert list(train[u]) == list(full[:-2])
        assert list(ds.history(u, "valid")) == list(full[:-2])
        assert list(ds.history(u, "test")) == list(full[:-1])
        assert ds.target(u, "test") == full[-1]
        negatives = set(ds.negatives("test")[u]) | set(ds.negatives("valid")[u])
        assert not negatives & set(full.tolist())


def test_prepared_dataset_round_trips_and_is_reused(tmp_path):
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())
    cfg = tiny_config(tmp_path, csv).data
    first = prepare_dataset(cfg, tmp_path / "prep")
    stamp = (tmp_path / "prep" / "interactions.parquet").stat().st_mtime_ns
    again = prepare_dataset(cfg, tmp_path / "prep")
    assert (tmp_path / "prep" / "interactions.parquet").stat().st_mtime_ns == stamp
    loaded = SequenceDataset.load(tmp_path / "prep")
    assert all((a == b).all() for a, b in zip(first.sequences, loaded.sequences, strict=True))
    assert again.manifest["content_hash"] == first.manifest["content_hash"]
    (tmp_path / "prep" / "items.parquet").write_bytes(b"PAR1 damaged PAR1")
    with pytest.raises(DataError, match=r"prep/items.parquet: not a readable Parquet table"):
        SequenceDataset.load(tmp_path / "prep")
    # a different setting is a different dataset: prepared again
    changed = prepare_dataset(cfg.model_copy(update={"negatives_seed": 1}), tmp_path / "prep")
    assert (changed.test_negatives != first.test_negatives).any()


def test_everything_filtered_away_is_a_clear_error_and_writes_nothing(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("user,item,ts\nu0,i1,1\nu0,i2,2\nu1,i1,3\n")
    with pytest.raises(DataError, match=r"x\.csv.*no interactions left after.*5-core"):
        prepare_dataset(_table_cfg(csv, k_core=5), tmp_path / "prep")
    assert not (tmp_path / "prep").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prep")]
