"""The report's figures: one function per figure, each returning a matplotlib Figure.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot, so nothing
touches global state or needs a display: saving to PNG renders with the Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA

from tslrec.records import EpochRecord
from tslrec.reporting.artifacts import Comparison
from tslrec.reporting.breakdown import K
from tslrec.training.trainer import VALID_METRIC

PLAIN_COLOR, ENHANCED_COLOR = "#4c72b0", "#dd8452"
WIDTH = 11.0  # inches; at the report's dpi this fills a ~1200 px column


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH, height), layout="constrained")


def _variants(c: Comparison) -> list[tuple[str, list[EpochRecord], str]]:
    return [
        ("plain", c.plain.history, PLAIN_COLOR),
        (f"TSLRec ({c.mode})", c.enhanced.history, ENHANCED_COLOR),
    ]


def training_curves(comparisons: Sequence[Comparison]) -> Figure:
    """Loss and validation NDCG@10 per epoch; the dot marks the epoch whose weights were kept."""
    fig = _figure(2.6 * len(comparisons) + 0.4)
    axes = fig.subplots(len(comparisons), 2, squeeze=False)
    for (loss_ax, valid_ax), c in zip(axes, comparisons, strict=True):
        for label, history, color in _variants(c):
            epochs = [h.epoch for h in history]
            valid = [h.valid_ndcg for h in history]
            best = int(np.argmax(valid))
            loss_ax.plot(epochs, [h.loss for h in history], color=color, label=label)
            valid_ax.plot(epochs, valid, color=color, label=label)
            valid_ax.plot(epochs[best], valid[best], "o", color=color)
        loss_ax.set(title=f"{c.backbone}: training loss", ylabel="loss")
        valid_ax.set(title=f"{c.backbone}: validation {VALID_METRIC}", ylabel=VALID_METRIC)
        for ax in (loss_ax, valid_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    return fig


def sft_loss(step_losses: Sequence[float], epochs: int) -> Figure:
    """Stage-1 loss per optimizer step, with a moving average (steps are noisy) and epoch ends."""
    fig = _figure(3.4)
    ax = fig.subplots()
    losses = np.asarray(step_losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1)
    window = len(losses) // 25
    ax.plot(steps, losses, color=PLAIN_COLOR, alpha=0.35 if window > 1 else 1.0, label="per step")
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color=PLAIN_COLOR, label=f"mean of {window} steps")
    for epoch in range(1, epochs):
        ax.axvline(epoch * len(losses) / epochs, color="grey", linestyle=":", linewidth=1)
    ax.set(title="Stage 1: LLM fine-tuning loss", xlabel="optimizer step", ylabel="loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def category_colors(k: int) -> np.ndarray:
    """K colours, the same in every category figure: tab10's ten hues first, then the shades of
    tab20b and tab20c one shade at a time (50 before they repeat), so neighbours differ in hue."""
    shades = [
        colormaps[name].colors[shade::4] for shade in range(4) for name in ("tab20b", "tab20c")
    ]
    palette = [*colormaps["tab10"].colors, *(c for group in shades for c in group)]
    return np.array([palette[i % len(palette)] for i in range(k)])


def category_sizes(counts: np.ndarray) -> Figure:
    """Items per latent category, coloured as in the projection."""
    fig = _figure(3.0)
    ax = fig.subplots()
    ids = np.arange(len(counts))
    ax.bar(ids, counts, color=category_colors(len(counts)))
    ax.set_xticks(ids, [str(i) for i in ids], fontsize="small" if len(counts) > 20 else None)
    ax.set(title="Latent categories: items per category", xlabel="category", ylabel="items")
    ax.set_xlim(-0.6, len(counts) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    return fig


def category_projection(before: np.ndarray, after: np.ndarray, labels: np.ndarray) -> Figure:
    """2-D PCA of the stage-0 and the stage-2 item tables, each item coloured by its category.

    `labels[i]` is the category of row i (items 1..N, padding excluded).
    """
    fig = _figure(5.0)
    colors = category_colors(int(labels.max()) + 1)[labels]
    tables = [("stage 0: SASRec item embeddings", before), ("stage 2: LLM item embeddings", after)]
    for ax, (title, table) in zip(fig.subplots(1, 2), tables, strict=True):
        pca = PCA(n_components=2, random_state=0).fit(table)
        xy = pca.transform(table)
        share = pca.explained_variance_ratio_ * 100
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=10, alpha=0.8, linewidths=0)
        ax.set(
            title=f"{title} (d = {table.shape[1]})",
            xlabel=f"PC1 ({share[0]:.0f}% of variance)",
            ylabel=f"PC2 ({share[1]:.0f}% of variance)",
        )
        ax.grid(alpha=0.3)
    return fig


def bucket_bars(tables: Mapping[str, pl.DataFrame], xlabel: str) -> Figure:
    """Plain vs enhanced NDCG@10 per bucket, one panel per backbone; n = users in the bucket.

    Each table has the columns bucket, users, plain, enhanced (see `compare_buckets`).
    """
    fig = _figure(3.6)
    axes = np.atleast_1d(fig.subplots(1, len(tables), sharey=True))
    for ax, (backbone, table) in zip(axes, tables.items(), strict=True):
        x = np.arange(table.height)
        for offset, column, label, color in (
            (-0.2, "plain", "plain", PLAIN_COLOR),
            (0.2, "enhanced", "TSLRec", ENHANCED_COLOR),
        ):
            values = table[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            ax.bar(x + offset, values, width=0.4, color=color, label=label)
        ticks = [f"{b}\n(n={n})" for b, n in zip(table["bucket"], table["users"], strict=True)]
        ax.set_xticks(x, ticks, fontsize="small")
        ax.set(title=backbone, xlabel=xlabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"test NDCG@{K}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2, fontsize="small")
    return fig


def stage_costs(costs: Mapping[str, float]) -> Figure:
    """Seconds per stage as horizontal bars, stages 0-2 in one colour, downstream in the other."""
    fig = _figure(0.38 * len(costs) + 1.0)
    ax = fig.subplots()
    names, seconds = list(costs), list(costs.values())
    colors = [PLAIN_COLOR if name.startswith("stage") else ENHANCED_COLOR for name in names]
    bars = ax.barh(names, seconds, color=colors)
    ax.bar_label(bars, labels=[f"{s:,.1f} s" for s in seconds], padding=3, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, max(seconds) * 1.15 if max(seconds) > 0 else 1)
    ax.set(title="Cost per stage", xlabel="seconds")
    ax.grid(axis="x", alpha=0.3)
    return fig


def transmission_bars(bars: Mapping[str, tuple[float, float]]) -> Figure:
    """Accuracy of naming an item's latent category, each bar beside the floor it must beat
    (the grey tick): the head on one-item prompts, and the probes on each item table."""
    fig = _figure(0.38 * len(bars) + 1.0)
    ax = fig.subplots()
    names = list(bars)
    values = [bars[n][0] for n in names]
    floors = [bars[n][1] for n in names]
    colors = [ENHANCED_COLOR if "stage 2" in n or "head" in n else PLAIN_COLOR for n in names]
    drawn = ax.barh(names, values, color=colors)
    ax.bar_label(drawn, labels=[f"{v:.1%}" for v in values], padding=3, fontsize="small")
    y = np.arange(len(names))
    ax.vlines(floors, y - 0.4, y + 0.4, colors="0.3", linewidth=2, label="floor")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set(title="Do the categories reach the stage-2 table?", xlabel="accuracy")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig
