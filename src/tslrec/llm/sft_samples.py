"""Stage 1's samples: what the preference model is fine-tuned on.

User-level (the paper): one sample per user per epoch, so the cost is O(#users). By default
(``sft.samples = window``) each epoch draws every user one window of their training sequence,
1..``prompt.max_items`` consecutive items, and the target g counts exactly the items the prompt
shows: prompt and target agree, and one-item windows teach what stage 2 asks (an item alone).
``history`` is the first version: the last items shown, the whole history as target.
Instance-level (the baseline it is compared with): one sample per (prefix -> next item)
position, target the next item's category one-hot, O(sum of lengths).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tslrec.errors import TslrecError
from tslrec.llm.categories import preference_target
from tslrec.llm.preference_model import preference_loss
from tslrec.llm.prompts import PromptBuilder


@dataclass(frozen=True)
class Sample:
    """One training prompt: token ids, the K-dim target, and where it came from."""

    input_ids: list[int]
    target: np.ndarray  # (K,) float32
    user: int  # index into train_sequences
    length: int  # number of prefix items the target describes (before prompt truncation)


def _items(sequence: Sequence[int] | np.ndarray) -> list[int]:
    return [int(i) for i in sequence if int(i) > 0]


def user_level_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
) -> list[Sample]:
    """One sample per user with a non-empty training prefix: prompt of the prefix, target g_u.

    Only ``train_sequences`` is read, so validation/test items can reach neither prompt nor target.
    """
    labels = np.asarray(labels, dtype=np.int64)
    samples = []
    for user, sequence in enumerate(train_sequences):
        items = _items(sequence)
        if items:
            target = preference_target(items, labels, k)
            samples.append(Sample(builder.build(items), target, user, len(items)))
    return samples


def window_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
    seed: int,
) -> list[Sample]:
    """One window per user with a training item, drawn with ``seed``.

    Its length is uniform on 1..min(``prompt.max_items``, the user's length), its end uniform
    over the places it fits; the prompt shows exactly those items (fewer where
    ``prompt.max_tokens`` cuts the oldest) and the target is their category histogram, so a
    one-item window's target is its item's one-hot. Only ``train_sequences`` is read: no window
    reaches a validation or test item.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    samples = []
    for user, sequence in enumerate(train_sequences):
        items = _items(sequence)
        if not items:
            continue
        length = int(rng.integers(1, min(builder.cfg.max_items, len(items)) + 1))
        end = int(rng.integers(length, len(items) + 1))
        window = builder.shown(items[end - length : end])  # the oldest go where tokens run out
        target = preference_target(window, labels, k)
        samples.append(Sample(builder.build(window), target, user, len(window)))
    return samples


def holdout_users(
    train_sequences: Sequence[Sequence[int] | np.ndarray], share: float, seed: int
) -> tuple[list[int], list[int]]:
    """``(training users, held-out users)``: a seeded ``share`` of the users with a training
    item never trains, so the loss on them says whether the model learned to read prompts."""
    users = [u for u, s in enumerate(train_sequences) if _items(s)]
    held = round(share * len(users))
    if share > 0 and len(users) > 1:
        held = min(max(held, 1), len(users) - 1)
    order = np.random.default_rng(seed).permutation(len(users))
    out = {users[i] for i in order[:held].tolist()}
    return [u for u in users if u not in out], sorted(out)


def count_instance_samples(train_sequences: Sequence[Sequence[int] | np.ndarray]) -> int:
    """sum(len - 1): how many samples instance-level SFT would have in full."""
    return sum(max(len(_items(s)) - 1, 0) for s in train_sequences)


def instance_level_samples(
    train_sequences: Sequence[Sequence[int] | np.ndarray],
    labels: np.ndarray,
    k: int,
    builder: PromptBuilder,
    max_samples: int | None = None,
    seed: int = 0,
) -> list[Sample]:
    """One sample per (prefix -> next item) position; target = one-hot category of the next item.

    ``max_samples`` draws a seeded subset of positions *before* any prompt is built, since the full
    set is O(sum of lengths) and would not fit in memory for large datasets.
    """
    labels = np.asarray(labels, dtype=np.int64)
    sequences = [_items(s) for s in train_sequences]
    per_user = np.array([max(len(s) - 1, 0) for s in sequences], dtype=np.int64)
    total = int(per_user.sum())
    chosen = np.arange(total) if max_samples is None else _subset(total, max_samples, seed)
    offsets = np.concatenate([[0], np.cumsum(per_user)])
    users = np.searchsorted(offsets, chosen, side="right") - 1
    samples = []
    for flat, user in zip(chosen.tolist(), users.tolist(), strict=True):
        t = flat - int(offsets[user]) + 1  # prefix length 1..len-1
        items = sequences[user]
        target = np.zeros(k, dtype=np.float32)
        category = labels[items[t]]
        if category < 0:
            raise TslrecError(f"item {items[t]} has no category")
        target[category] = 1.0
        samples.append(Sample(builder.build(items[:t]), target, user, t))
    return samples


def _subset(total: int, max_samples: int, seed: int) -> np.ndarray:
    """Sorted seeded subset of range(total) of size min(total, max_samples)."""
    if max_samples >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=max_samples, replace=False))


def mean_target_loss(
    samples: Sequence[Sample], loss: str, mean_of: Sequence[Sample] | None = None
) -> float:
    """The loss of a model that ignores the prompt and always predicts the mean target (of
    ``mean_of``, default ``samples`` themselves: held-out users get the training mean).

    For KL the prediction is logits whose softmax is the mean distribution.
    """
    targets = torch.from_numpy(np.stack([s.target for s in samples])).double()
    source = samples if mean_of is None else mean_of
    mean_target = torch.from_numpy(np.stack([s.target for s in source])).double().mean(dim=0)
    mean = mean_target.unsqueeze(0).expand_as(targets)
    prediction = mean if loss == "mse" else mean.clamp_min(1e-12).log()
    return float(preference_loss(prediction, targets, loss))


def subsample(samples: Sequence[Sample], max_samples: int | None, seed: int) -> list[Sample]:
    """Seeded subset (original order kept) for quick runs; all samples when the cap is None."""
    if max_samples is None:
        return list(samples)
    return [samples[i] for i in _subset(len(samples), max_samples, seed).tolist()]
