"""Does stage 1 teach what stage 2 reads? The transmission diagnostics of every run.

Stage 2 embeds each item as a one-item prompt, and its table helps a backbone only if it carries
what fine-tuning taught: the items' latent categories. Measured three ways, each beside the
floor it must beat:

- the fine-tuned head on the one-item states (top-1 / top-5 against each item's own category;
  floors: always naming the largest category, and 5/K);
- probes that predict an item's category from a table (5-fold, seeded): a logistic regression
  and a 10-nearest-neighbour classifier on standardised features, on stage 0's SASRec table
  (the ceiling: the categories were clustered from it), on the LLM's one-item states before
  fine-tuning (what the LLM knows of items by itself) and on the stage-2 table;
- the loss on held-out users (``sft.holdout``) against predicting the training users' mean
  target, which the pipeline records beside these (``sft.evaluation_loss``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tslrec.llm.preference_model import readout
from tslrec.records import HeadAccuracy, ProbeAccuracy, Transmission

FOLDS, NEIGHBOURS, TOP = 5, 10, 5
PROBE_MAX_ITER = 300


def head_accuracy(scores: np.ndarray, labels: np.ndarray) -> HeadAccuracy:
    """How well the head's scores (N, K) name each item's category ``labels`` (N,)."""
    k = scores.shape[1]
    order = np.argsort(-scores, axis=1)
    rank = np.argmax(order == labels[:, None], axis=1) + 1  # 1 = the head's first choice
    counts = np.bincount(labels, minlength=k)
    return HeadAccuracy(
        top1=float(np.mean(rank == 1)),
        top5=float(np.mean(rank <= min(TOP, k))),
        mean_rank=float(rank.mean()),
        categories_predicted=int(np.unique(order[:, 0]).size),
        majority_rate=float(counts.max() / counts.sum()),
        top5_chance=min(TOP, k) / k,
    )


def probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int) -> ProbeAccuracy:
    """Cross-validated accuracy of a linear and a k-NN probe predicting ``labels``."""
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    neighbours = min(NEIGHBOURS, max(len(labels) // FOLDS, 1))
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=neighbours))
    with warnings.catch_warnings():  # a probe that has not fully converged is still a probe
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # a category with fewer items than folds
        return ProbeAccuracy(
            linear=float(cross_val_score(linear, features, labels, cv=folds).mean()),
            knn=float(cross_val_score(knn, features, labels, cv=folds).mean()),
        )


def transmission(
    labels: np.ndarray,
    tables: dict[str, np.ndarray],
    hidden: torch.Tensor | None,
    head: dict[str, torch.Tensor] | None,
    seed: int,
) -> Transmission:
    """The diagnostics: probes on each of ``tables`` (item rows only, in item order, named by
    what they are) and, given the stage-2 one-item states ``hidden`` (N+1, D, last-token pooled)
    and the head's ``center`` / ``weight`` / ``bias``, the head's own accuracy.

    ``labels`` are the items' categories, row 0 (padding) included. The held-out loss is the
    pipeline's to add."""
    items = np.asarray(labels[1:], dtype=np.int64)
    accuracy = None
    if hidden is not None and head is not None:
        scores = readout(hidden, head["center"], head["weight"], head["bias"], "head")
        accuracy = head_accuracy(scores[1:].numpy(), items)
    return Transmission(
        items=int(items.size),
        categories_k=int(items.max()) + 1,
        head_one_item=accuracy,
        probes={name: probe_accuracy(table, items, seed) for name, table in tables.items()},
    )


def transmission_lines(diagnostics: Transmission) -> list[str]:
    """The diagnostics in a few sentences, for run summaries and logs."""
    lines = []
    if head := diagnostics.head_one_item:
        lines.append(
            f"Head on one-item prompts: top-1 {head.top1:.1%} (largest category "
            f"{head.majority_rate:.1%}), top-5 {head.top5:.1%} (chance "
            f"{head.top5_chance:.1%}), true category's mean rank {head.mean_rank:.1f}, "
            f"{head.categories_predicted} of {diagnostics.categories_k} categories named."
        )
    if probes := diagnostics.probes:
        lines.append(
            "Category probes (linear / 10-NN, 5-fold): "
            + "; ".join(f"{name} {p.linear:.1%} / {p.knn:.1%}" for name, p in probes.items())
            + "."
        )
    if held := diagnostics.heldout:
        lines.append(
            f"Held-out users ({held.users}): loss {held.loss:.4g} against "
            f"{held.mean_target_loss:.4g} for the training users' mean target."
        )
    return lines
