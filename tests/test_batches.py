import numpy as np
import torch

from tslrec.data.dataset import left_pad
from tslrec.training.batches import (
    causal_windows,
    mask_items,
    masked_windows,
    trim_padding,
)


def test_left_pad_keeps_the_most_recent_items():
    out = left_pad([np.array([1, 2, 3, 4]), np.array([5])], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 5]]


def test_causal_windows_make_every_transition_a_target_once():
    inputs, targets = causal_windows([np.array([1, 2, 3, 4, 5, 6])], max_len=3)
    # 5 transitions split from the most recent end into windows of 3 and 2
    assert inputs.tolist() == [[3, 4, 5], [0, 1, 2]]
    assert targets.tolist() == [[4, 5, 6], [0, 2, 3]]


def test_masked_windows_and_masking():
    windows = masked_windows([np.array([1, 2, 3, 4, 5])], max_len=3)
    assert windows.tolist() == [[3, 4, 5], [0, 1, 2]]
    torch.manual_seed(0)
    inputs, targets = mask_items(torch.from_numpy(windows), mask_prob=0.5, mask_id=99)
    hidden = inputs == 99
    assert hidden[:, -1].all(), "the last item of every window is always a target"
    assert (targets[hidden] == torch.from_numpy(windows)[hidden]).all()
    assert (targets[~hidden] == 0).all() and (inputs[torch.from_numpy(windows) == 0] == 0).all()


def test_trim_padding_cuts_only_columns_that_are_padding_in_every_row():
    inputs = torch.tensor([[0, 0, 0, 4, 5], [0, 0, 1, 2, 3]])
    targets = torch.tensor([[0, 0, 0, 5, 6], [0, 0, 2, 3, 7]])
    cut_inputs, cut_targets = trim_padding(inputs, targets)
    assert cut_inputs.tolist() == [[0, 4, 5], [1, 2, 3]]
    assert cut_targets.tolist() == [[0, 5, 6], [2, 3, 7]]
