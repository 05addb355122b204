"""How figures are written in every table (run results, experiments, the results page).

Kept free of torch and polars so that tools which only read JSON figures stay light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tslrec.records import COMPARE_METRICS, CompareRow, RunResults

VARIANTS = ("plain", "enhanced")
SIGNIFICANT = 0.05  # the p-value below which a verdict calls a difference real
SUMMARY_METRICS = ("NDCG@10", "HR@10")
# prefixes of the metrics of each view of a test evaluation (see evaluation.metrics), and names
VIEWS = ("", "tail_", "sampled_", "sampled_tail_")
VIEW_NAMES = {
    "": "all users",
    "tail_": "tail targets",
    "sampled_": "sampled negatives, all users",
    "sampled_tail_": "sampled negatives, tail targets",
}


def cutoffs(metrics: dict[str, float]) -> list[int]:
    """The k of every "NAME@k" metric, ascending: the columns of a metrics table."""
    return sorted({int(name.split("@")[1]) for name in metrics if "@" in name})


def signed_percent(value: float) -> str:
    """A percentage with its sign: "+1.2%", "-0.4%"."""
    return f"{value:+.1f}%"


def relative_change(before: float, after: float) -> float:
    """(after - before) / before; 0 from a zero baseline, where it is undefined."""
    return (after - before) / before if before else 0.0


def percent_change(before: float, after: float) -> str:
    """The relative change as "+1.2%"."""
    return signed_percent(relative_change(before, after) * 100)


def mean_std(mean: float, std: float, seeds: int) -> str:
    """Mean ± std over several seeds; a lone seed has no spread to show."""
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"


def summary_table(rows: Sequence[dict]) -> str:
    """An experiment summary (`tslrec.pipeline.experiment.summarize` rows) as Markdown: the
    main table, then, where the runs scored them, the tail and sampled-protocol views."""
    tables = [_view_table(rows, "")]
    views = [v for v in VIEWS[1:] if rows and f"paired_{v}ttest_p" in rows[0]]
    if views:
        tables.append(_views_table(rows, views))
    return "\n\n".join(tables)


def _view_table(rows: Sequence[dict], view: str) -> str:
    grid_key = next((r["grid_key"] for r in rows if r.get("grid_key")), None)
    header = ["dataset", *([grid_key] if grid_key else []), "backbone", "seeds"]
    for metric in SUMMARY_METRICS:
        header += [f"plain {metric}", f"TSLRec {metric}", "change"]
    header += ["paired t p (NDCG@10)", "Wilcoxon p"]
    text = 3 if grid_key else 2  # dataset, grid value, backbone: left-aligned
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * text + "---:|" * (len(header) - text)]
    for r in rows:
        value = [str(json.loads(r["grid_value"]))] if grid_key else []  # stored as JSON text
        cells = [r["dataset"], *value, r["backbone"], str(r["seeds"])]
        cells += _view_cells(r, view)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _view_cells(r: dict, view: str) -> list[str]:
    cells = []
    for metric in (f"{view}{m}" for m in SUMMARY_METRICS):
        for variant in VARIANTS:
            mean, std = r[f"{variant}_{metric}_mean"], r[f"{variant}_{metric}_std"]
            cells.append(mean_std(mean, std, r["seeds"]))
        cells.append(signed_percent(r[f"change_{metric}_%"]))
    return [*cells, f"{r[f'paired_{view}ttest_p']:.3g}", f"{r[f'paired_{view}wilcoxon_p']:.3g}"]


def _views_table(rows: Sequence[dict], views: Sequence[str]) -> str:
    """One row per (run, view): how the gain splits between popular and tail test targets and
    between full ranking and sampled negatives."""
    header = ["dataset", "backbone", "view", "users"]
    for metric in SUMMARY_METRICS:
        header += [f"plain {metric}", f"TSLRec {metric}", "change"]
    header += ["paired t p (NDCG@10)", "Wilcoxon p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]
    for r in rows:
        for view in views:
            users = r[f"paired_{view}users"]
            cells = [r["dataset"], r["backbone"], VIEW_NAMES[view], str(users)]
            lines.append("| " + " | ".join(cells + _view_cells(r, view)) + " |")
    return "\n".join(lines)


def comparison_table(results: RunResults) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the plain-vs-enhanced table (HR/NDCG@k, change, paired p).

    One formatter for every rendering (the Markdown results, the HTML report), so they never drift.
    """
    ks = cutoffs(results.rows[0].plain)
    metrics = [f"{m}@{k}" for k in ks for m in ("HR", "NDCG")]
    header = ["backbone", "variant", *metrics, "paired p (NDCG@10)"]
    body = []
    for row in results.rows:
        plain, enhanced = row.plain, row.enhanced
        name, p_value = row.backbone, f"{row.paired_test.ttest_p:.3g}"
        body += [
            [name, "plain", *(f"{plain[m]:.4f}" for m in metrics), ""],
            [name, f"TSLRec ({row.mode})", *(f"{enhanced[m]:.4f}" for m in metrics), p_value],
            [name, "change", *(percent_change(plain[m], enhanced[m]) for m in metrics), ""],
        ]
    return header, body


def views_table(results: RunResults) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the plain-vs-enhanced NDCG@10 / HR@10 in the other views of the test
    evaluation (tail targets, sampled negatives), with each view's paired test; no rows for
    results that scored none."""
    header = ["backbone", "view", "users", "plain NDCG@10", "TSLRec NDCG@10", "change"]
    header += ["plain HR@10", "TSLRec HR@10", "change", "paired p (NDCG@10)"]
    body = []
    for row in results.rows:
        for view, test in row.paired_test_views.items():
            plain, enhanced = row.plain, row.enhanced
            cells = [row.backbone, VIEW_NAMES[view], str(test.users)]
            for metric in (f"{view}NDCG@10", f"{view}HR@10"):
                before, after = plain[metric], enhanced[metric]
                cells += [f"{before:.4f}", f"{after:.4f}", percent_change(before, after)]
            body.append([*cells, f"{test.ttest_p:.3g}"])
    return header, body


def compare_table(rows: Sequence[CompareRow]) -> str:
    """`tslrec compare`'s rows (`tslrec.pipeline.compare.compare_rows`) as Markdown."""
    header, body = compare_cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def compare_cells(rows: Sequence[CompareRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison: one line per backbone and table (plain first)."""
    header = ["backbone", "table", "NDCG@10", "HR@10", "tail NDCG@10", "vs plain", "p vs plain"]
    header += ["p vs best control", "table s", "table MiB", "train s"]
    body = []
    for r in rows:
        cells = [r.backbone, r.table]
        for metric in COMPARE_METRICS[:3]:
            spread = r.spread(metric)
            cells.append(mean_std(*spread, r.seeds) if spread else "-")
        plain = r.table == "plain"
        cells.append("" if plain else signed_percent(r.change_ndcg))
        cells.append("" if plain else f"{r.p_vs_plain:.3g}")
        against = r.p_vs_best_control
        cells.append(f"{against:.3g} ({r.best_control})" if against is not None else "")
        cells.append("" if plain else f"{r.table_seconds:.0f}")
        memory = r.table_memory_mib  # peak host growth; not in figures published before
        cells.append("" if plain or memory is None else f"{memory:.0f}")
        cells.append(f"{r.train_seconds:.0f}")
        body.append(cells)
    return header, body


def verdict(rows: Sequence[CompareRow]) -> str:
    """One sentence per backbone, following from the figures: TSLRec's gain over plain and
    whether it beats the best control, each with its p-value."""
    sentences = []
    for backbone in dict.fromkeys(r.backbone for r in rows):
        mine = [r for r in rows if r.backbone == backbone]
        tslrec = next((r for r in mine if r.table == "tslrec"), None)
        if tslrec is None:
            sentences.append(f"{backbone}: no TSLRec table in this comparison.")
            continue
        gain = _claim(tslrec.change_ndcg, tslrec.p_vs_plain, "plain")
        best = tslrec.best_control
        if best is None:
            sentences.append(f"{backbone}: TSLRec {gain}; no control compared.")
            continue
        control = next(r for r in mine if r.table == best)
        diff = 100 * (tslrec.ndcg_mean / control.ndcg_mean - 1)
        p = tslrec.p_vs_best_control
        beats = diff > 0 and p < SIGNIFICANT
        link = "and" if beats else "but not"
        sentences.append(
            f"{backbone}: TSLRec {gain}, {link} better than `{best}` "
            f"({signed_percent(diff)}, p = {p:.2g})."
        )
    return " ".join(sentences)


def _claim(change: float, p: float, against: str) -> str:
    significant = "" if p < SIGNIFICANT else ", not significant"
    return f"{signed_percent(change)} over {against} (p = {p:.2g}{significant})"
