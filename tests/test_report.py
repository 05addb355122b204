"""`write_report` on the tiny pipeline run, and the NDCG breakdown on hand-made numbers."""

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from tslrec.cli import app
from tslrec.errors import TslrecError
from tslrec.pipeline.tslrec import run_tslrec
from tslrec.reporting import write_report
from tslrec.reporting.breakdown import (
    compare_buckets,
    history_buckets,
    ndcg_by_bucket,
    popularity_groups,
)

FIGURES = {
    "training_curves",
    "sft_loss",
    "category_sizes",
    "category_projection",
    "transmission",
    "ndcg_by_history",
    "ndcg_by_popularity",
    "stage_costs",
}


def test_report_embeds_every_figure_and_writes_it_as_png(pipeline_config, tmp_path):
    cfg = pipeline_config()
    run_tslrec(cfg, progress=False)

    index = write_report(cfg.output_dir)

    assert index == cfg.output_dir / "report" / "index.html"
    page = index.read_text()
    embedded = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([^"]+)"', page)
    assert page.count("<img") == len(embedded) == len(FIGURES)
    assert {name for name, _ in embedded} == FIGURES
    assert not re.search(r'(?:src|href)="(?!data:)', page), "no external resources"
    assert {p.name for p in index.parent.iterdir()} == {f"{n}.png" for n in FIGURES} | {
        "index.html"
    }
    for name, data in embedded:
        png = base64.b64decode(data)
        assert png == (index.parent / f"{name}.png").read_bytes()
        pixels = imread(io.BytesIO(png)).reshape(-1, 4)
        assert (pixels != pixels[0]).any(), f"{name} is a single colour"
    for backbone in ("sasrec", "gru4rec"):
        assert f"<td>{backbone}</td><td>TSLRec (adapter)</td>" in page
    assert "<td>head top-1, one-item prompts</td>" in page and "held-out loss (6 users)" in page

    outcome = CliRunner().invoke(app, ["report", str(cfg.output_dir), "--out", str(tmp_path)])
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "index.html").read_text().count("<img") == len(FIGURES)


def test_report_of_a_moved_run_names_a_missing_artifact(pipeline_config, tmp_path):
    cfg = pipeline_config(enhance={"backbones": ["sasrec"]})
    results = run_tslrec(cfg, progress=False)
    moved = tmp_path / "moved"
    shutil.move(cfg.output_dir, moved)  # the model paths results.json recorded are now stale

    assert write_report(moved, tmp_path / "out").is_file()

    enhanced = moved / "models" / (results.rows[0].enhanced_dir.rsplit("/", 1)[-1])
    (enhanced / "history.json").unlink()
    with pytest.raises(TslrecError, match=re.escape(str(enhanced / "history.json"))):
        write_report(moved)
    # the command line says the same in one line and exits non-zero
    outcome = CliRunner().invoke(app, ["report", str(moved)])
    assert outcome.exit_code == 2 and "history.json: missing" in outcome.output


def _retrained(results_file, **changes):
    """Pretend the model in that directory was trained again: its record changes."""
    record = json.loads(results_file.read_text())
    results_file.write_text(json.dumps({**record, **changes}))
    return record


def test_report_refuses_a_model_trained_again_since_the_run(pipeline_config, tmp_path):
    cfg = pipeline_config(enhance={"backbones": ["sasrec"]})
    results = run_tslrec(cfg, progress=False)
    enhanced = cfg.output_dir / "models" / Path(results.rows[0].enhanced_dir).name
    record = _retrained(enhanced / "results.json", test={"NDCG@10": 0.5})
    with pytest.raises(TslrecError, match=f"{enhanced.name}: trained again since"):
        write_report(cfg.output_dir, tmp_path / "out")
    (enhanced / "results.json").write_text(json.dumps(record))

    stage0 = cfg.output_dir / "models" / "sasrec" / "results.json"
    _retrained(stage0, best_epoch=-1)
    with pytest.raises(TslrecError, match="sasrec: trained again since"):
        write_report(cfg.output_dir, tmp_path / "out")


def test_ndcg_by_bucket_known_answer():
    per_user = pl.DataFrame({"user_idx": [3, 2, 1, 0, 4, 5], "rank": [10, 2, 1, 0, 0, 3]})
    bucket = np.array([0, 0, 1, 1, 2, 2])  # user u is in bucket[u]
    table = ndcg_by_bucket(per_user, bucket, ["a", "b", "c", "empty"])
    # NDCG@10 of rank r (0-based) is 1 / log2(r + 2) inside the top 10, else 0
    expected = [
        (1.0 + 1 / math.log2(3)) / 2,  # users 0 (rank 0) and 1 (rank 1)
        (1 / math.log2(4) + 0.0) / 2,  # users 2 (rank 2) and 3 (rank 10: outside the top 10)
        (1.0 + 1 / math.log2(5)) / 2,  # users 4 (rank 0) and 5 (rank 3)
        None,
    ]
    assert table["bucket"].to_list() == ["a", "b", "c", "empty"]
    assert table["users"].to_list() == [2, 2, 2, 0]
    assert table["NDCG@10"].to_list()[:3] == pytest.approx(expected[:3])
    assert table["NDCG@10"][3] is None

    better = per_user.with_columns(rank=pl.lit(0))
    compared = compare_buckets(per_user, better, bucket, ["a", "b", "c", "empty"])
    assert compared.columns == ["bucket", "users", "plain", "enhanced"]
    assert compared["enhanced"].to_list()[:3] == [1.0, 1.0, 1.0]


def test_history_buckets_are_quantiles_of_actual_lengths():
    lengths = np.array([6, 7, 8, 9, 10, 11, 12, 13, 13, 13])
    bucket, labels = history_buckets(lengths, n=4)
    assert labels == ["6-7", "8-9", "10-12", "13"]
    assert bucket.tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3]
    bucket, labels = history_buckets(np.array([5, 5, 5]))
    assert bucket.tolist() == [0, 0, 0] and labels == ["5"]


def test_popularity_groups_split_training_interactions_in_thirds():
    # training counts: item 1 x4, item 2 x2, items 3 and 4 x1, item 5 never (8 in all)
    groups = popularity_groups([np.array([1, 1, 1, 2, 2, 3]), np.array([1, 4])], num_items=5)
    # cumulative share before each item: 0, 4/8, 6/8, 7/8, 8/8 -> head, mid, tail, tail, tail
    assert groups.tolist() == [-1, 0, 1, 2, 2, 2]
