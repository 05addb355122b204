"""`tslrec report`: one self-contained HTML page that shows what a finished run did and cost.

The page embeds its figures as base64 PNG data URIs and carries no external resource, so it can
be mailed or archived as one file; the same PNGs are written next to it for slides and papers.
A tiny inline script records on <body data-images-loaded="ok/total"> how many images decoded,
which is what `scripts/check_report.py` reads back from a headless browser.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from tslrec.evaluation.formatting import (
    compare_cells,
    comparison_table,
    percent_change,
    views_table,
)
from tslrec.io import atomic_path
from tslrec.layout import REPORT_INDEX
from tslrec.reporting import figures
from tslrec.reporting.artifacts import RunArtifacts, load_run
from tslrec.reporting.breakdown import HISTORY_BUCKETS, K, compare_buckets, user_buckets

DPI = 110

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 1240px;
       padding: 1.5em 2em 4em; background: #fff; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
img { display: block; width: 100%; height: auto; margin: 0.8em 0 0.3em; }
figcaption, p.note { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.change td { color: #555; font-style: italic; border-bottom: 2px solid #ccc; }
"""

# counts the <img> that decoded (a broken one has naturalWidth 0) once the page has loaded;
# synchronous, because a headless browser may dump the DOM before img.decode() promises settle
IMAGES_LOADED_SCRIPT = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = `${ok}/${images.length}`;
});
"""


@dataclass(frozen=True)
class Plot:
    """One figure of the page: `name` is also its PNG file's stem."""

    name: str
    figure: Figure
    caption: str


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    plots: list[Plot]
    table: str = ""  # rendered HTML, shown under the plots


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def html_table(header: Sequence[str], body: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A plain HTML table; columns after the first `text_columns` are right-aligned numbers.

    Rows labelled "change" (relative differences) are set apart from the scores above them.
    """

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f"<{tag}{'' if i < text_columns else ' class=num'}>{html.escape(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    rows = [f"<tr>{cells('th', header)}</tr>"]
    for values in body:
        css = ' class="change"' if "change" in values[:text_columns] else ""
        rows.append(f"<tr{css}>{cells('td', values)}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _change(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None else percent_change(before, after)


def bucket_table(tables: dict[str, pl.DataFrame]) -> str:
    """Bucket, users, then plain / TSLRec / change for each backbone: the bars' numbers."""
    first = next(iter(tables.values()))
    header = ["bucket", "users"]
    for backbone in tables:
        header += [f"{backbone} plain", f"{backbone} TSLRec", f"{backbone} change"]
    body = []
    for i, (bucket, users) in enumerate(zip(first["bucket"], first["users"], strict=True)):
        row = [bucket, str(users)]
        for table in tables.values():
            plain, enhanced = table["plain"][i], table["enhanced"][i]
            row += [_score(plain), _score(enhanced), _change(plain, enhanced)]
        body.append(row)
    return html_table(header, body)


def _results_section(run: RunArtifacts) -> Section:
    header, body = comparison_table(run.results)
    table = html_table(header, body, text_columns=2)
    intro = (
        "Test metrics of each backbone trained plain and with the TSLRec item table, the "
        "relative change, and the paired t-test p-value over users on NDCG@10."
    )
    header, body = views_table(run.results)
    if body:  # the tail targets and the sampled protocol, beside full ranking
        rule = run.results.tail_rule or "the tail rule"
        intro += f" The second table splits the test users by target (tail: {rule}) and ranks "
        intro += "each target among its sampled negatives too."
        table += html_table(header, body, text_columns=2)
    return Section("Plain vs TSLRec", intro, [], table)


def _comparison_section(run: RunArtifacts) -> Section | None:
    """`tslrec compare`'s table and verdict, where it ran on this run's config."""
    if run.comparison is None:
        return None
    header, body = compare_cells(run.comparison.rows)
    return Section(
        "Is the LLM worth it? TSLRec against controls",
        "The same backbones enhanced with tables of TSLRec's shape without the LLM's "
        "contribution (the untuned LLM, a seeded random table, the k-means categories), through "
        "the same path; paired t-tests over users against plain and against the control best "
        f"on validation. Verdict: {run.comparison.verdict}",
        [],
        html_table(header, body, text_columns=2),
    )


def _training_section(run: RunArtifacts) -> Section:
    sft = run.sft
    return Section(
        "Training",
        "Downstream models stop early on validation NDCG@10 and keep the best epoch's weights.",
        [
            Plot(
                "training_curves",
                figures.training_curves(run.comparisons),
                "Training loss and validation NDCG@10 per epoch; the dot marks the kept epoch.",
            ),
            Plot(
                "sft_loss",
                figures.sft_loss(sft.step_losses, sft.epochs),
                f"Stage-1 {sft.level}-level fine-tuning: {sft.samples} samples, "
                f"{sft.steps} optimizer steps in {sft.epochs} epoch(s); dotted lines end "
                "epochs.",
            ),
        ],
    )


def _categories_section(run: RunArtifacts) -> Section:
    categories = run.categories
    labels = categories.labels[1:]
    return Section(
        "Latent categories",
        f"K = {categories.k} k-means clusters of the stage-0 SASRec item embeddings: the "
        "categories whose per-user shares the LLM learns to predict in stage 1.",
        [
            Plot(
                "category_sizes",
                figures.category_sizes(categories.counts),
                "Items per category.",
            ),
            Plot(
                "category_projection",
                figures.category_projection(run.stage0_items, run.llm_items, labels),
                "2-D PCA of each item table, items coloured by category: left the collaborative "
                "space the categories were fitted in, right the fine-tuned LLM's item embeddings "
                "that enhance the backbones.",
            ),
        ],
    )


def _transmission_section(run: RunArtifacts) -> Section | None:
    """What stage 1 got through to stage 2 (`tslrec.llm.transmission`), where the run has it."""
    diagnostics = run.results.stages.transmission
    if diagnostics is None:
        return None
    majority = float(run.categories.counts.max() / run.categories.counts.sum())
    bars: dict[str, tuple[float, float]] = {}
    rows = []
    if head := diagnostics.head_one_item:
        bars["head top-1, one-item prompts"] = (head.top1, head.majority_rate)
        bars["head top-5, one-item prompts"] = (head.top5, head.top5_chance)
    for name, probe in diagnostics.probes.items():
        label = name.replace("stage0_", "stage 0 ").replace("stage2_", "stage 2 ")
        label = label.replace("llm_before_sft", "LLM before SFT")
        bars[f"{label}: linear probe"] = (probe.linear, majority)
        bars[f"{label}: knn probe"] = (probe.knn, majority)
    for name, (value, floor) in bars.items():
        rows.append([name, f"{value:.1%}", f"{floor:.1%}"])
    if held := diagnostics.heldout:
        rows.append(
            [
                f"held-out loss ({held.users} users)",
                f"{held.loss:.4g}",
                f"{held.mean_target_loss:.4g}",
            ]
        )
    return Section(
        "Transmission: stage 1 to stage 2",
        "Stage 2's table helps only if it carries what stage 1 taught: each item's latent "
        "category. The fine-tuned head on each one-item prompt, and 5-fold linear and 10-NN "
        "probes on the item tables, against the floor beside each (the largest category's share, "
        "5/K for top-5; for the held-out loss, predicting the training users' mean target).",
        [Plot("transmission", figures.transmission_bars(bars), "Grey ticks: the floors.")],
        html_table(["figure", "value", "floor"], rows),
    )


def _breakdown_sections(run: RunArtifacts) -> list[Section]:
    dataset = run.dataset
    targets = [dataset.target(u, "test") for u in range(dataset.num_users)]
    splits = user_buckets(dataset.train_sequences(), targets, dataset.num_items)
    specs = [
        (
            "history",
            "training-history length (interactions)",
            f"Users split into {HISTORY_BUCKETS} quantile buckets of their number of training "
            "interactions (buckets merge where many users share a length).",
        ),
        (
            "popularity",
            "test item popularity",
            "Users split by their test item's popularity. Items are sorted by training "
            "interactions, most popular first, and cut where the cumulative share of training "
            "interactions passes 1/3 and 2/3: head, mid and tail items each account for about a "
            "third of all training interactions; items unseen in training are tail.",
        ),
    ]
    sections = []
    for key, xlabel, intro in specs:
        bucket, labels = splits[key]
        tables = {
            c.backbone: compare_buckets(c.plain.per_user, c.enhanced.per_user, bucket, labels)
            for c in run.comparisons
        }
        sections.append(
            Section(
                f"NDCG@{K} by {xlabel}",
                intro,
                [
                    Plot(
                        f"ndcg_by_{key}",
                        figures.bucket_bars(tables, xlabel),
                        "Mean test NDCG@10 per bucket; n = users.",
                    )
                ],
                bucket_table(tables),
            )
        )
    return sections


def _cost_section(run: RunArtifacts) -> Section:
    costs = run.stage_costs()
    total = sum(costs.values())
    body = [[name, f"{s:,.1f}", f"{s / total * 100:.1f}%"] for name, s in costs.items()]
    return Section(
        "Cost",
        "Seconds each stage took when it was computed (cached stages cost nothing on a rerun). "
        "Training times include the per-epoch validation; the plain SASRec is stage 0.",
        [Plot("stage_costs", figures.stage_costs(costs), f"Total {total:,.0f} s.")],
        html_table(["stage", "seconds", "share"], body),
    )


def build_sections(run: RunArtifacts) -> list[Section]:
    return [
        _results_section(run),
        *([section] if (section := _comparison_section(run)) else []),
        _training_section(run),
        _categories_section(run),
        *([section] if (section := _transmission_section(run)) else []),
        *_breakdown_sections(run),
        _cost_section(run),
    ]


def _header(run: RunArtifacts) -> tuple[str, str]:
    """The page heading (HTML) and the plain title for <title>."""
    results, stats = run.results, run.results.dataset_stats
    title = f"TSLRec on {results.dataset}"
    meta = (
        f"LLM {results.llm}; {results.protocol}; {stats['users']:,} users, "
        f"{stats['items']:,} items, {stats['interactions']:,} interactions."
    )
    return f"<h1>{html.escape(title)}</h1><p class=meta>{html.escape(meta)}</p>", title


def render_page(run: RunArtifacts, sections: Sequence[Section], pngs: dict[str, bytes]) -> str:
    """The whole page; `pngs` maps each plot's name to its PNG bytes."""
    heading, title = _header(run)
    parts = [heading]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.intro)}</p>")
        for plot in section.plots:
            data = base64.b64encode(pngs[plot.name]).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(plot.name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>"
            )
        parts.append(section.table)
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script>{IMAGES_LOADED_SCRIPT}</script></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write `index.html` and one PNG per figure to `out_dir` (default RUN_DIR/report).

    Each file is written atomically; returns the path of index.html.
    """
    run = load_run(Path(run_dir))
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    sections = build_sections(run)
    pngs = {plot.name: png_bytes(plot.figure) for s in sections for plot in s.plots}
    for name, data in pngs.items():
        with atomic_path(out / f"{name}.png") as tmp:
            tmp.write_bytes(data)
    index = out / REPORT_INDEX
    with atomic_path(index) as tmp:
        tmp.write_text(render_page(run, sections, pngs), encoding="utf-8")
    return index
