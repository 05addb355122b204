"""Where a model gains or loses: test NDCG@10 by user-history length and by target popularity.

An average over all users can hide a gain on short histories or on rare items, which is where
LLM item knowledge is supposed to help, so the report splits users two ways:

* history: quantile buckets (quartiles by default) of the number of training interactions, so
  each bucket holds about the same number of users;
* popularity: the test target's group among head / mid / tail. Items are sorted by their number
  of training interactions, most popular first (ties by item id), and cut where the cumulative
  share of training interactions passes 1/3 and 2/3: each group accounts for about a third of
  all training interactions. Items never seen in training are tail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from tslrec.errors import TslrecError
from tslrec.evaluation.significance import per_user_ndcg

HISTORY_BUCKETS = 4
POPULARITY_GROUPS = ("head", "mid", "tail")
K = 10


def history_buckets(lengths: np.ndarray, n: int = HISTORY_BUCKETS) -> tuple[np.ndarray, list[str]]:
    """Each user's quantile bucket of history length, and labels like "8-10" (inclusive).

    Bucket lower bounds are quantiles that are actual lengths ("inverted_cdf"), so no bucket is
    empty; bounds that coincide (many users of one length) merge into fewer than `n` buckets.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    quantiles = np.linspace(0, 1, n + 1)[:-1]
    lows = np.unique(np.quantile(lengths, quantiles, method="inverted_cdf")).astype(np.int64)
    bucket = np.searchsorted(lows, lengths, side="right") - 1
    highs = [*(lows[1:] - 1), int(lengths.max())]
    labels = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in zip(lows, highs, strict=True)]
    return bucket, labels


def popularity_groups(train_sequences: Sequence[np.ndarray], num_items: int) -> np.ndarray:
    """Each item's group (0 head, 1 mid, 2 tail), indexed by item id; padding 0 gets -1.

    An item belongs to the group in which its interactions start on the cumulative curve.
    """
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in train_sequences])
    counts = np.bincount(items, minlength=num_items + 1)
    counts[0] = 0
    order = np.argsort(-counts[1:], kind="stable") + 1
    share_before = (np.cumsum(counts[order]) - counts[order]) / max(int(counts.sum()), 1)
    last = len(POPULARITY_GROUPS) - 1  # unseen items start at share 1.0, past every cut: tail
    groups = np.full(num_items + 1, -1, dtype=np.int64)
    groups[order] = np.minimum((share_before * len(POPULARITY_GROUPS)).astype(np.int64), last)
    return groups


def ndcg_by_bucket(
    per_user: pl.DataFrame, bucket: np.ndarray, labels: Sequence[str], k: int = K
) -> pl.DataFrame:
    """Users and mean NDCG@k per bucket (null if empty); `bucket[u]` indexes `labels`."""
    scores = per_user_ndcg(per_user, k)
    if len(scores) != len(bucket):
        raise TslrecError(f"{len(scores)} users have test ranks but {len(bucket)} have buckets")
    users = np.bincount(bucket, minlength=len(labels))
    sums = np.bincount(bucket, weights=scores, minlength=len(labels))
    means = [float(s / n) if n else None for s, n in zip(sums, users, strict=True)]
    return pl.DataFrame({"bucket": list(labels), "users": users, f"NDCG@{k}": means})


def compare_buckets(
    plain: pl.DataFrame, enhanced: pl.DataFrame, bucket: np.ndarray, labels: Sequence[str]
) -> pl.DataFrame:
    """bucket, users, plain and enhanced NDCG@10 side by side, for one backbone."""
    metric = f"NDCG@{K}"
    before = ndcg_by_bucket(plain, bucket, labels)
    after = ndcg_by_bucket(enhanced, bucket, labels)
    return before.rename({metric: "plain"}).with_columns(enhanced=after[metric])


def user_buckets(
    train_sequences: Sequence[np.ndarray], test_targets: Sequence[int], num_items: int
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Both splits of the users: {"history": (bucket, labels), "popularity": (bucket, labels)}."""
    lengths = np.array([len(s) for s in train_sequences])
    groups = popularity_groups(train_sequences, num_items)
    return {
        "history": history_buckets(lengths),
        "popularity": (groups[np.asarray(test_targets)], list(POPULARITY_GROUPS)),
    }
