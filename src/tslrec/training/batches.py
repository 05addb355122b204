"""Turning sequences into fixed-length, left-padded tensors for training and evaluation.

Training uses whole sequences: a user's training prefix is cut, from the most recent end, into
non-overlapping windows of `max_len`, and every position of a window is a training target. Each
interaction is therefore a target exactly once per epoch, without replaying every prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tslrec.data.dataset import left_pad


def _windows(seq: np.ndarray, length: int) -> list[np.ndarray]:
    return [seq[max(0, end - length) : end] for end in range(len(seq), 0, -length)]


def causal_windows(train_seqs: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both (W, max_len): targets are the inputs shifted by one step."""
    inputs, targets = [], []
    for seq in train_seqs:
        if len(seq) < 2:
            continue
        for window in _windows(np.arange(len(seq) - 1), max_len):
            inputs.append(seq[window])
            targets.append(seq[window + 1])
    return left_pad(inputs, max_len), left_pad(targets, max_len)


def masked_windows(train_seqs: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """(W, max_len) windows for cloze training; masking is drawn fresh for every batch."""
    windows = [w for seq in train_seqs for w in _windows(seq, max_len) if len(w)]
    return left_pad(windows, max_len)


def mask_items(
    windows: torch.Tensor, mask_prob: float, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random subset of items (at least the last one of each window); targets 0 elsewhere."""
    real = windows != 0
    hide = (torch.rand(windows.shape, device=windows.device) < mask_prob) & real
    hide[:, -1] |= real[:, -1]
    inputs = windows.masked_fill(hide, mask_id)
    targets = windows.masked_fill(~hide, 0)
    return inputs, targets


def trim_padding(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop the leading columns that are padding in every row of the first tensor."""
    real_columns = (tensors[0] != 0).any(0).nonzero()
    first = int(real_columns[0]) if len(real_columns) else tensors[0].size(1)
    return tuple(t[:, first:] for t in tensors)
