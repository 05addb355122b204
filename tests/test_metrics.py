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


def test_paired_test_detects_a_consistent_improvement_and_not_noise():
    import polars as pl

    from tslrec.evaluation.significance import paired_test, per_user_ndcg

    users = list(range(200))
    base = pl.DataFrame({"user_idx": users, "rank": [5] * 200})
    better = pl.DataFrame({"user_idx": users, "rank": [0] * 150 + [5] * 50})
    assert per_user_ndcg(base, 10)[0] == pytest.approx(1 / math.log2(7))
    result = paired_test(base, better)
    assert result["mean_diff"] > 0 and result["ttest_p"] < 1e-6 and result["wilcoxon_p"] < 1e-6
    assert paired_test(base, base)["ttest_p"] == 1.0


def test_sampled_and_seen_masked_ranks_count_only_their_candidates(tmp_path):
    """Per user: full rank = items (not padding) scoring >= the target, others of them ahead;
    sampled rank = the same among the user's sampled negatives; masking drops seen items."""
    from synthetic import cyclic_sequences, tiny_config, write_interactions_csv

    from tslrec.evaluation.evaluator import evaluate
    from tslrec.models import build_model
    from tslrec.pipeline.backbone import load_dataset

    cfg = tiny_config(tmp_path, write_interactions_csv(tmp_path / "c.csv", cyclic_sequences()))
    ds = load_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(ds.num_items, cfg.model).eval()  # untrained: arbitrary, untied scores
    users = np.arange(ds.num_users)
    with torch.no_grad():
        scores = model.score(torch.from_numpy(ds.histories(users, "test", cfg.model.max_len)))
    result = {
        (protocol, masked): evaluate(
            model,
            ds,
            "test",
            cfg.eval.model_copy(update={"protocol": protocol, "mask_seen": masked}),
        )
        .per_user["rank"]
        .to_numpy()
        for protocol, masked in (("full", False), ("sampled", False), ("full", True))
    }
    for u in users:
        target = ds.target(u, "test")
        above = scores[u] >= scores[u, target]
        above[0] = above[target] = False
        seen = np.setdiff1d(ds.history(u, "test"), [target])
        assert result[("full", False)][u] == int(above.sum())
        assert result[("sampled", False)][u] == int(above[ds.negatives("test")[u]].sum())
        assert result[("full", True)][u] == int(above.sum()) - int(above[seen].sum())
