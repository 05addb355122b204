import math

import numpy as np
import pytest
import torch

from tslrec.evaluation.metrics import metrics_from_ranks, target_ranks


def test_metrics_match_hand_computed_values():
    # ranks 0, 1, 4 and 30 (0 = first place) for four users
    m = metrics_from_ranks(np.array([0, 1, 4, 30]), ks=[5, 10])
    assert m["HR@5"] == pytest.approx(3 / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert m["MRR@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)
    assert m["HR@10"] == pytest.approx(3 / 4)


def test_rank_counts_higher_scores_and_ties_pessimistically():
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1], [1.0, 1.0, 1.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([0.7, 1.0]))
    # user 0: only 0.9 beats 0.7; user 1: a constant scorer ranks its target last, never first
    assert ranks.tolist() == [1, 3]
