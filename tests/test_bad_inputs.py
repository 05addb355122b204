"""A corpus of bad inputs, each run through the CLI as a user would type it.

For every case: exit status 2, one `error:` line that names the file, line or key at fault, no
traceback, and nothing new left anywhere in the working directory (no partial artifact).

Every case starts from a copy of one small trained run (`template`), with relative paths, so a
case may damage the run, the data or the config without retraining.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from synthetic import cyclic_sequences, write_interactions_csv
from typer.testing import CliRunner

from tslrec.cli import app

runner = CliRunner()
BASE = {
    "output_dir": "run",
    "data": {
        "name": "cyclic",
        "format": "table",
        "path": "c.csv",
        "columns": {"user": "user", "item": "item", "timestamp": "ts"},
        "k_core": 3,
        "num_sampled_negatives": 10,
    },
    "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 1, "max_len": 10},
    "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "num_threads": 1},
}
ALL_ITEMS = ",".join(f"i{i}" for i in range(1, 21))  # the cyclic catalogue


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # after `tslrec`
    expect: tuple[str, ...]  # what the message must name (in the output, white space undone)
    setup: Callable[[Path], object] | None = None  # writes the bad input into the case's dir


def write(name: str, text: str | bytes) -> Callable[[Path], object]:
    data = text.encode() if isinstance(text, str) else text
    return lambda d: (d / name).write_bytes(data)


def parquet(name: str, columns: dict) -> Callable[[Path], object]:
    return lambda d: pl.DataFrame(columns).write_parquet(d / name)


def config(name: str, **sections: object) -> Callable[[Path], object]:
    raw = {**BASE, **sections}
    return lambda d: (d / name).write_text(yaml.safe_dump(raw))


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def prepare(path: str, fmt: str = "table", *extra: str) -> list[str]:
    """`data prepare` on the base config with another input file."""
    return (
        ["data", "prepare", "-c", "cfg.yaml", "-s", f"data.path={path}"]
        + (["-s", f"data.format={fmt}"] if fmt != "table" else [])
        + [arg for e in extra for arg in ("-s", e)]
    )


def delete(relative: str) -> Callable[[Path], object]:
    def remove(d: Path) -> None:
        target = d / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return remove


REVIEW = {"reviewerID": "u1", "asin": "a1", "overall": 5, "unixReviewTime": 100}
USERS_TS = {"user": ["u1"] * 3, "item": ["i1", "i2", "i3"]}
TRAIN = ["train", "-c", "cfg.yaml"]
EVAL = ["evaluate", "-c", "cfg.yaml"]
RECOMMEND = ["recommend", "-c", "cfg.yaml"]

CASES = [
    # --- command arguments ----------------------------------------------------------------
    Case("train-backbone-lstm", [*TRAIN, "-b", "lstm"], ("--backbone 'lstm'", "sasrec")),
    Case("evaluate-backbone-lstm", [*EVAL, "-b", "lstm"], ("--backbone 'lstm'",)),
    Case("recommend-backbone-lstm", [*RECOMMEND, "-b", "lstm", "--user", "u1"], ("--backbone",)),
    Case("evaluate-split-train", [*EVAL, "--split", "train"], ("--split", "'train'")),
    Case("recommend-items-empty", [*RECOMMEND, "--items", ""], ("--items ''", "no item ids")),
    Case("recommend-items-commas", [*RECOMMEND, "--items", ",,"], ("--items ',,'",)),
    Case("recommend-all-seen", [*RECOMMEND, "--items", ALL_ITEMS], ("none left to recommend",)),
    Case("recommend-unknown-user", [*RECOMMEND, "--user", "nobody"], ("unknown user id 'nobody'",)),
    Case("recommend-unknown-item", [*RECOMMEND, "--items", "i1,zz"], ("unknown item id 'zz'",)),
    Case("recommend-neither", RECOMMEND, ("exactly one of --user",)),
    Case("recommend-both", [*RECOMMEND, "--user", "u1", "--items", "i1"], ("exactly one",)),
    Case("compare-no-config", ["compare"], ("--config is required",)),
    Case("compare-bad-table", ["compare", "-c", "cfg.yaml", "--tables", "foo"], ("--tables",)),
    Case("compare-bad-seeds", ["compare", "-c", "cfg.yaml", "--seeds", "a,b"], ("--seeds",)),
    Case("compare-no-seeds", ["compare", "-c", "cfg.yaml", "--seeds", ","], ("--seeds",)),
    Case(
        "compare-bad-backbone",
        ["compare", "-c", "cfg.yaml", "--backbones", "lstm"],
        ("--backbones", "'lstm'"),
    ),
    Case("report-missing-dir", ["report", "nowhere"], ("nowhere",)),
    # --- config files and overrides -------------------------------------------------------
    Case("config-missing", ["train", "-c", "none.yaml"], ("none.yaml", "not found")),
    Case("config-is-dir", ["train", "-c", "run"], ("run", "is a directory")),
    Case(
        "config-yaml-syntax",
        ["train", "-c", "bad.yaml"],
        ("bad.yaml", "line 3, column 10", "not valid YAML"),
        write("bad.yaml", "train:\n  lr: 0.1\n   epochs: 3\n"),
    ),
    Case(
        "config-yaml-unclosed-list",
        ["train", "-c", "bad.yaml"],
        ("bad.yaml", "line 3, column 6", "not valid YAML"),
        write("bad.yaml", "train:\n  ks: [1, 2\nmodel: {}\n"),
    ),
    Case(
        "config-top-level-list",
        ["train", "-c", "bad.yaml"],
        ("bad.yaml", "mapping"),
        write("bad.yaml", "- a\n- b\n"),
    ),
    Case(
        "config-not-utf8",
        ["train", "-c", "bad.yaml"],
        ("bad.yaml", "line 2", "UTF-8"),
        write("bad.yaml", b"train:\n  lr: \xff\n"),
    ),
    Case("override-unknown-key", [*TRAIN, "-s", "train.epochz=3"], ("'train.epochz'",)),
    Case("override-no-equals", [*TRAIN, "-s", "train.lr"], ("override 'train.lr'",)),
    Case("override-not-section", [*TRAIN, "-s", "train.lr.x=1"], ("'lr' is not a section",)),
    Case("lr-negative", [*TRAIN, "-s", "train.lr=-1"], ("'train.lr'",)),
    Case("lr-text", [*TRAIN, "-s", "train.lr=fast"], ("'train.lr'", "'fast'")),
    Case("dropout-range", [*TRAIN, "-s", "model.dropout=1.5"], ("'model.dropout'",)),
    Case("heads-hidden", [*TRAIN, "-s", "model.num_heads=3"], ("'model'", "num_heads 3")),
    Case("seed-negative", [*TRAIN, "-s", "train.seed=-1"], ("'train.seed'",)),
    Case("threads-zero", [*TRAIN, "-s", "train.num_threads=0"], ("'train.num_threads'",)),
    Case(
        "experiment-seed-negative",
        ["experiment", "-c", "exp.yaml"],
        ("exp.yaml", "'seeds.0'"),
        write("exp.yaml", "name: e\nconfigs: [cfg.yaml]\nseeds: [-1]\n"),
    ),
    Case("ks-without-10", [*TRAIN, "-s", "eval.ks=[5]"], ("'eval.ks'",)),
    Case("protocol-unknown", [*TRAIN, "-s", "eval.protocol=half"], ("'eval.protocol'",)),
    Case("format-unknown", [*TRAIN, "-s", "data.format=xml"], ("'data.format'",)),
    Case("k-core-negative", [*TRAIN, "-s", "data.k_core=-1"], ("'data.k_core'",)),
    Case("negatives-zero", [*TRAIN, "-s", "data.num_sampled_negatives=0"], ("negatives",)),
    Case("output-dir-empty", [*TRAIN, "-s", "output_dir=''"], ("'output_dir'", "must name")),
    Case(
        "output-dir-empty-in-file",
        ["data", "prepare", "-c", "empty.yaml"],
        ("empty.yaml", "'output_dir'"),
        config("empty.yaml", output_dir=""),
    ),
    Case(
        "output-dir-is-file",
        [*TRAIN, "-s", "output_dir=c.csv"],
        ("output_dir 'c.csv'", "is a file"),
    ),
    Case(
        "output-dir-under-file",
        ["data", "prepare", "-c", "cfg.yaml", "-s", "output_dir=c.csv/sub"],
        ("output_dir 'c.csv/sub'", "c.csv is a file"),
    ),
    Case(
        "output-dir-not-writable",  # procfs refuses a new directory even to root
        [*TRAIN, "-s", "output_dir=/proc/tslrec-out"],
        ("output_dir '/proc/tslrec-out'", "/proc is not writable"),
    ),
    Case(
        "per-backbone-bad-value",
        [*TRAIN, "-s", "per_backbone.gru4rec.train.lr=-1"],
        ("per_backbone.gru4rec.train", "lr"),
    ),
    Case(
        "experiment-missing",
        ["experiment", "-c", "none.yaml"],
        ("none.yaml", "not found"),
    ),
    Case(
        "experiment-bad-name",
        ["experiment", "-c", "exp.yaml"],
        ("exp.yaml", "'name'"),
        write("exp.yaml", "name: 'a b'\nconfigs: [cfg.yaml]\n"),
    ),
    Case(
        "experiment-unknown-seed",
        ["experiment", "-c", "exp.yaml", "--seed", "99"],
        ("seeds [99]",),
        write("exp.yaml", "name: e\nconfigs: [cfg.yaml]\nseeds: [1]\n"),
    ),
    Case(
        "experiment-grid-key",
        ["experiment", "-c", "exp.yaml"],
        ("exp.yaml", "'grid.key'"),
        write("exp.yaml", "name: e\nconfigs: [cfg.yaml]\ngrid: {key: train.lr, values: [1]}\n"),
    ),
    # --- the data: paths and settings -----------------------------------------------------
    Case("data-missing-file", prepare("nope.csv"), ("nope.csv", "not found")),
    Case("data-is-directory", prepare("run"), ("run", "is a directory", "data.path")),
    Case(
        "data-path-unset",
        ["data", "prepare", "-c", "nopath.yaml"],
        ("'data.path'",),
        config("nopath.yaml", data={**BASE["data"], "path": None}),
    ),
    Case("item-path-missing", [*prepare("c.csv"), "-s", "data.item_path=x.csv"], ("x.csv",)),
    Case("k-core-too-high", [*prepare("c.csv"), "-s", "data.k_core=100"], ("c.csv", "k_core")),
    Case(
        "threshold-without-ratings",
        [*prepare("c.csv"), "-s", "data.rating_threshold=3"],
        ("c.csv", "rating_threshold"),
    ),
    Case(
        "sampled-user-saw-everything",
        [*TRAIN, "-s", "data.path=all.csv", "-s", "eval.protocol=sampled"],
        ("eval.protocol 'sampled'", "user 'u0'", "every one of the 4 items"),
        write(
            "all.csv",
            "user,item,ts\n" + "".join(f"u{u},i{i},{i}\n" for u in range(4) for i in range(1, 5)),
        ),
    ),
    # --- delimited text -------------------------------------------------------------------
    Case(
        "csv-bad-timestamp",
        prepare("b.csv"),
        ("b.csv", "line 3", "'ts'", "'yesterday'"),
        write("b.csv", "user,item,ts\nu1,i1,1\nu1,i2,yesterday\n"),
    ),
    Case(
        "csv-unclosed-quote",
        prepare("b.csv"),
        ("b.csv", "line 3", "unclosed quote"),
        write("b.csv", 'user,item,ts\nu1,i1,1\nu1,"i2,2\nu2,i3,3\n'),
    ),
    Case(
        "csv-bad-after-quoted-newline",
        prepare("b.csv"),
        ("b.csv", "line 4", "'bad'"),
        write("b.csv", 'user,item,ts\nu1,"i\n1",1\nu1,i2,bad\n'),
    ),
    Case(
        "csv-header-carriage-return",
        prepare("b.csv"),
        ("b.csv", "'ts\\r'", "data.columns.timestamp"),
        write("b.csv", "user,item,ts\r\r\nu1,i1,1\n"),
    ),
    Case(
        "csv-infinite-timestamp",
        prepare("b.csv"),
        ("b.csv", "line 2", "'1e400'", "finite"),
        write("b.csv", "user,item,ts\nu1,i1,1e400\n"),
    ),
    Case(
        "csv-nan-timestamp",
        prepare("b.csv"),
        ("b.csv", "line 2", "'ts'"),
        write("b.csv", "user,item,ts\nu1,i1,nan\n"),
    ),
    Case(
        "csv-extra-fields",
        prepare("b.csv"),
        ("b.csv", "line 3", "expected 3 fields"),
        write("b.csv", "user,item,ts\nu1,i1,1\nu1,i2,2,9,9\n"),
    ),
    Case("csv-empty", prepare("b.csv"), ("b.csv", "empty"), write("b.csv", "")),
    Case(
        "csv-header-only",
        prepare("b.csv"),
        ("b.csv", "no data rows"),
        write("b.csv", "user,item,ts\n"),
    ),
    Case(
        "csv-missing-id",
        prepare("b.csv"),
        ("b.csv", "line 3", "'item'", "missing id"),
        write("b.csv", "user,item,ts\nu1,i1,1\nu1,,2\n"),
    ),
    Case(
        "csv-missing-column",
        prepare("b.csv"),
        ("b.csv", "missing column 'ts'", "data.columns.timestamp"),
        write("b.csv", "user,item,time\nu1,i1,1\n"),
    ),
    Case(
        "csv-not-utf8",
        prepare("b.csv"),
        ("b.csv", "UTF-8"),
        write("b.csv", b"user,item,ts\nu1,\xff\xfe,1\n"),
    ),
    Case(
        "csv-gzip-truncated",
        prepare("b.csv.gz"),
        ("b.csv.gz", "gzip"),
        write("b.csv.gz", gzip.compress(b"user,item,ts\n" + b"u1,i1,1\n" * 200)[:40]),
    ),
    Case(
        "table-unsupported-suffix",
        prepare("b.xlsx"),
        ("b.xlsx", "unsupported file type"),
        write("b.xlsx", "user,item,ts\n"),
    ),
    Case(
        "tsv-bad-timestamp",
        prepare("b.tsv"),
        ("b.tsv", "line 2", "'ts'"),
        write("b.tsv", "user\titem\tts\nu1\ti1\tsoon\n"),
    ),
    # --- Parquet --------------------------------------------------------------------------
    Case(
        "parquet-garbage",
        prepare("b.parquet"),
        ("b.parquet", "Parquet"),
        write("b.parquet", b"PAR1 not really"),
    ),
    Case(
        "parquet-list-timestamp",
        prepare("b.parquet"),
        ("b.parquet", "'ts'", "List"),
        parquet("b.parquet", {**USERS_TS, "ts": [[1], [2], [3]]}),
    ),
    Case(
        "parquet-struct-item",
        prepare("b.parquet"),
        ("b.parquet", "'item'", "Struct"),
        parquet(
            "b.parquet",
            {"user": ["u1"] * 3, "item": [{"x": i} for i in range(3)], "ts": [1.0, 2.0, 3.0]},
        ),
    ),
    Case(
        "parquet-nan-timestamp",
        prepare("b.parquet"),
        ("b.parquet", "row 2", "'ts'"),
        parquet("b.parquet", {**USERS_TS, "ts": [1.0, float("nan"), 3.0]}),
    ),
    Case(
        "parquet-inf-timestamp",
        prepare("b.parquet"),
        ("b.parquet", "row 3", "finite"),
        parquet("b.parquet", {**USERS_TS, "ts": [1.0, 2.0, float("inf")]}),
    ),
    Case(
        "parquet-missing-column",
        prepare("b.parquet"),
        ("b.parquet", "missing column 'ts'"),
        parquet("b.parquet", USERS_TS),
    ),
    Case(
        "parquet-null-user",
        prepare("b.parquet"),
        ("b.parquet", "row 1", "'user'"),
        parquet("b.parquet", {"user": [None, "u1"], "item": ["i1", "i2"], "ts": [1, 2]}),
    ),
    # --- RecBole atomic files -------------------------------------------------------------
    Case(
        "atomic-bad-header",
        prepare("b.inter", "atomic"),
        ("b.inter", "line 1", "'user'"),
        write("b.inter", "user\titem:token\tts:float\nu1\ti1\t1\n"),
    ),
    Case(
        "atomic-bad-type",
        prepare("b.inter", "atomic"),
        ("b.inter", "line 1", "'ts:date'"),
        write("b.inter", "user:token\titem:token\tts:date\nu1\ti1\t1\n"),
    ),
    Case(
        "atomic-duplicate-field",
        prepare("b.inter", "atomic"),
        ("b.inter", "line 1", "twice"),
        write("b.inter", "user:token\tuser:token\tts:float\nu1\ti1\t1\n"),
    ),
    Case(
        "atomic-field-count",
        prepare("b.inter", "atomic"),
        ("b.inter", "line 3", "expected 3 fields"),
        write("b.inter", "user:token\titem:token\tts:float\nu1\ti1\t1\nu1\ti2\t2\t7\n"),
    ),
    Case("atomic-empty", prepare("b.inter", "atomic"), ("b.inter", "empty"), write("b.inter", "")),
    Case(
        "atomic-bad-timestamp",
        prepare("b.inter", "atomic"),
        ("b.inter", "line 2", "'ts'"),
        write("b.inter", "user:token\titem:token\tts:float\nu1\ti1\tx\n"),
    ),
    Case(
        "amazon-ratings-fields",
        prepare("r.csv", "amazon-ratings"),
        ("r.csv", "line 1", "expected 4 fields"),
        write("r.csv", "u1,i1,5\n"),
    ),
    # --- JSON -----------------------------------------------------------------------------
    Case(
        "reviews-invalid-json",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 2", "not valid JSON"),
        write("r.json", jsonl(REVIEW, '{"reviewerID": "u1", "asin": }')),
    ),
    Case(
        "reviews-unterminated-string",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 1", "control character at character 19"),
        write("r.json", jsonl('{"reviewerID": "u1')),
    ),
    Case(
        "reviews-string-open-at-end",  # the decoder's message ends in "at": no "at at"
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 2", "Unterminated string starting at character 16"),
        write("r.json", jsonl(REVIEW) + '{"reviewerID": "u1'),
    ),
    Case(
        "reviews-deep-nesting",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 2", "nested too deeply"),
        write("r.json", jsonl(REVIEW, "[" * 100_000 + "]" * 100_000)),
    ),
    Case(
        "reviews-not-object",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 1", "JSON object"),
        write("r.json", jsonl([1, 2])),
    ),
    Case(
        "reviews-unknown-keys",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 1", "reviewerID"),
        write("r.json", jsonl({"who": "u1"})),
    ),
    Case(
        "reviews-missing-item",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 1", "'asin'"),
        write("r.json", jsonl({"reviewerID": "u1", "overall": 5, "unixReviewTime": 1})),
    ),
    Case(
        "reviews-bad-rating",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "line 1", "'overall'", "'five'"),
        write("r.json", jsonl({**REVIEW, "overall": "five"})),
    ),
    Case(
        "reviews-empty",
        prepare("r.json", "amazon-reviews"),
        ("r.json", "no reviews"),
        write("r.json", "\n\n"),
    ),
    Case(
        "sequences-lone-user",
        prepare("s.txt", "sequences"),
        ("s.txt", "line 2", "'u2'"),
        write("s.txt", "u1 i1 i2\nu2\n"),
    ),
    Case(
        "sequences-duplicate-user",
        prepare("s.txt", "sequences"),
        ("s.txt", "line 2", "'u1'", "line 1"),
        write("s.txt", "u1 i1 i2\nu1 i3 i4\n"),
    ),
    Case(
        "lcrec-invalid-json",
        prepare("l.json", "lcrec"),
        ("l.json", "line 2", "not valid JSON"),
        write("l.json", '{"u1": [1, 2],\n "u2": [1, }\n'),
    ),
    Case(
        "lcrec-deep-nesting",
        prepare("l.json", "lcrec"),
        ("l.json", "nested too deeply"),
        write("l.json", '{"u1": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ),
    Case(
        "lcrec-top-list",
        prepare("l.json", "lcrec"),
        ("l.json", "JSON object"),
        write("l.json", "[1, 2]"),
    ),
    Case(
        "lcrec-bad-items",
        prepare("l.json", "lcrec"),
        ("l.json", "line 2", "user 'u2'"),
        write("l.json", '{"u1": [1, 2],\n "u2": [true]}'),
    ),
    Case(
        "item-file-unknown-item",
        [*prepare("c.csv"), "-s", "data.item_path=items.csv"],
        ("items.csv", "line 2", "'zz'"),
        write("items.csv", "item_id,title\nzz,Nothing\n"),
    ),
    Case(
        "item-file-duplicate",
        [*prepare("c.csv"), "-s", "data.item_path=items.csv"],
        ("items.csv", "line 3", "'i1'", "twice"),
        write("items.csv", "item_id,title\ni1,One\ni1,Again\n"),
    ),
    # --- damaged runs ---------------------------------------------------------------------
    Case(
        "run-best-deleted",
        [*EVAL],
        ("run/models/sasrec/best", "no checkpoint"),
        delete("run/models/sasrec/best"),
    ),
    Case(
        "run-best-deleted-recommend",
        [*RECOMMEND, "--user", "u1"],
        ("run/models/sasrec/best", "model.json"),
        delete("run/models/sasrec/best"),
    ),
    Case(
        "run-results-damaged",
        EVAL,
        ("results.json", "not valid JSON"),
        write("run/models/sasrec/results.json", "{"),
    ),
    Case(
        "run-weights-damaged",
        EVAL,
        ("model.safetensors", "safetensors"),
        write("run/models/sasrec/best/model.safetensors", b"garbage"),
    ),
    Case(
        "run-not-trained",
        [*EVAL, "-s", "output_dir=other"],
        ("other/models/sasrec", "run `tslrec train`"),
        lambda d: shutil.copytree(d / "run" / "data", d / "other" / "data"),
    ),
    Case(
        "prepared-table-damaged",
        ["data", "stats", "-c", "cfg.yaml"],
        ("items.parquet", "tslrec data prepare"),
        write("run/data/items.parquet", b"garbage"),
    ),
    Case(
        "prepared-manifest-damaged",
        ["data", "stats", "-c", "cfg.yaml"],
        ("manifest.json", "not valid JSON"),
        write("run/data/manifest.json", "{"),
    ),
    Case(
        "report-not-a-run",
        ["report", "run/data"],
        ("run/data",),
    ),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A trained SASRec (one epoch) on the cyclic data, every path relative to this folder."""
    root = tmp_path_factory.mktemp("template")
    write_interactions_csv(root / "c.csv", cyclic_sequences())
    (root / "cfg.yaml").write_text(yaml.safe_dump(BASE))
    here = Path.cwd()
    os.chdir(root)
    try:
        result = runner.invoke(app, ["train", "-c", "cfg.yaml"])
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return root


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, template: Path, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "w"
    shutil.copytree(template, work)
    if case.setup is not None:
        case.setup(work)
    before = _files(work)
    monkeypatch.chdir(work)
    result = runner.invoke(app, case.args)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "error:" in output and "Traceback" not in output, output
    assert " at at " not in output and not output.endswith("^"), output
    assert isinstance(result.exception, SystemExit | None), result.exception
    for part in case.expect:
        assert part in output, f"{part!r} not in: {output}"
    assert _files(work) == before, "left behind: " + ", ".join(
        map(str, sorted(_files(work) - before))
    )


# --- the handler itself, warnings and leftovers ---------------------------------------------


def _in(template: Path, tmp_path: Path, monkeypatch) -> Path:
    work = tmp_path / "w"
    shutil.copytree(template, work)
    monkeypatch.chdir(work)
    return work


def test_every_command_goes_through_the_handler() -> None:
    from tslrec.cli import _friendly_errors, data_app

    handler = _friendly_errors(lambda: None).__code__  # every wrapper the handler makes runs this
    commands = [*app.registered_commands, *data_app.registered_commands]
    assert len(commands) >= 9
    for command in commands:
        assert command.callback.__code__ is handler, command.callback


def test_debug_adds_the_traceback(template, tmp_path, monkeypatch) -> None:
    _in(template, tmp_path, monkeypatch)
    result = runner.invoke(app, ["--debug", *TRAIN, "-b", "lstm"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "error: --backbone 'lstm'" in result.output
    assert "Traceback" not in runner.invoke(app, [*TRAIN, "-b", "lstm"]).output  # reset


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (RuntimeError("boom"), "error: unexpected RuntimeError: boom; rerun with --debug"),
        (PermissionError(13, "Permission denied", "/x/y.json"), "error: /x/y.json: Permission"),
        (RecursionError(), "error: input nested too deeply"),
        (KeyError("k"), "error: unexpected KeyError: 'k'"),
    ],
)
def test_any_exception_becomes_one_error_line(raised, message, template, tmp_path, monkeypatch):
    _in(template, tmp_path, monkeypatch)

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr("tslrec.cli.load_config", fail)
    result = runner.invoke(app, TRAIN)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())
    debug = runner.invoke(app, ["--debug", *TRAIN])
    assert debug.exit_code == 2 and "Traceback" in debug.output


def test_markup_in_a_message_is_printed_as_is(template, tmp_path, monkeypatch) -> None:
    _in(template, tmp_path, monkeypatch)
    result = runner.invoke(app, [*TRAIN, "-s", "train.ep[red]och=1"])
    assert result.exit_code == 2 and "unknown key 'train.ep[red]och'" in result.output


def test_sampled_protocol_with_fewer_negatives_than_asked_warns(template, tmp_path, monkeypatch):
    """Legal, but surely a mistake: some user of the 20-item catalogue leaves fewer than the
    10 negatives asked for, so everyone is ranked against fewer."""
    _in(template, tmp_path, monkeypatch)
    result = runner.invoke(app, [*EVAL, "-s", "eval.protocol=sampled"])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert "warning: eval.protocol 'sampled': data.num_sampled_negatives is 10" in output
    assert "user 'u" in output and "inflated" in output


def test_training_sweeps_what_a_killed_run_left(template, tmp_path, monkeypatch) -> None:
    import subprocess
    import sys

    from tslrec.io import writer_tag

    work = _in(template, tmp_path, monkeypatch)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a writer that is gone
    run = work / "run" / "models" / "sasrec"
    orphans = [
        run / f"{writer_tag('best', child.pid)}k2j4h5g6.tmp",
        run / f"{writer_tag('history.json', child.pid)}a1b2c3d4.tmp",
        run / f"{writer_tag('.state.previous', child.pid)}{'e' * 32}.trash",
    ]
    orphans[0].mkdir()
    (orphans[0] / "model.safetensors").write_bytes(b"half a model")
    orphans[1].write_text("{")
    orphans[2].mkdir()
    result = runner.invoke(app, [*TRAIN, "-s", "train.epochs=2"])  # resumes: one more epoch
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in orphans)
    assert not [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".trash"))]


def test_a_run_refused_for_its_protocol_leaves_no_model_directory(template, tmp_path, monkeypatch):
    """The check comes before the run writes its config and settings, not after an epoch."""
    work = _in(template, tmp_path, monkeypatch)
    (work / "all.csv").write_text(
        "user,item,ts\n" + "".join(f"u{u},i{i},{i}\n" for u in range(4) for i in range(1, 5))
    )
    args = [*TRAIN, "-s", "output_dir=fresh", "-s", "data.path=all.csv"]
    result = runner.invoke(app, [*args, "-s", "eval.protocol=sampled"])
    assert result.exit_code == 2 and "user 'u0'" in result.output
    assert (work / "fresh" / "data").is_dir() and not (work / "fresh" / "models").exists()


def test_recommending_more_than_is_left_warns(template, tmp_path, monkeypatch) -> None:
    _in(template, tmp_path, monkeypatch)
    seen = ",".join(f"i{i}" for i in range(1, 18))  # 3 of the 20 left
    result = runner.invoke(app, [*RECOMMEND, "--items", seen, "-k", "5"])
    assert result.exit_code == 0, result.output
    assert "warning: -k 5: only 3 items are not in this history" in result.output
