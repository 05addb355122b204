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
    from tslrec.pipeline.train import load_dataset

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


def test_each_view_of_an_evaluation_is_scored_on_its_own_users():
    import polars as pl

    from tslrec.evaluation.metrics import ranking_summary

    per_user = pl.DataFrame(
        {
            "user_idx": [3, 0, 1, 2],  # any order: read in user order
            "rank": [20, 0, 1, 5],
            "tail": [False, True, False, True],
            "sampled_rank": [30, 0, 0, 2],
        }
    )
    out = ranking_summary(per_user, [10])
    assert out["HR@10"] == pytest.approx(3 / 4)
    assert out["tail_users"] == 2
    assert out["tail_HR@10"] == 1.0  # users 0 and 2: ranks 0 and 5
    assert out["tail_NDCG@10"] == pytest.approx((1 + 1 / math.log2(7)) / 2)
    assert out["sampled_HR@10"] == pytest.approx(3 / 4)
    assert out["sampled_tail_NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 2)
    no_tail = ranking_summary(per_user.with_columns(tail=pl.lit(False)), [10])
    assert no_tail["tail_users"] == 0 and "tail_HR@10" not in no_tail


def test_full_ranking_scores_the_sampled_protocol_and_the_tail_beside_it(tmp_path):
    """The sampled ranks that full ranking keeps are the sampled protocol's own, and the tail is
    every user whose target has fewer than `eval.tail_below` training interactions."""
    from synthetic import cyclic_sequences, tiny_config, write_interactions_csv

    from tslrec.evaluation.evaluator import evaluate
    from tslrec.models import build_model
    from tslrec.pipeline.train import load_dataset

    cfg = tiny_config(tmp_path, write_interactions_csv(tmp_path / "c.csv", cyclic_sequences()))
    ds = load_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(ds.num_items, cfg.model).eval()
    rule = cfg.eval.model_copy(update={"tail_below": 29})
    full = evaluate(model, ds, "test", rule)
    sampled = evaluate(model, ds, "test", rule.model_copy(update={"protocol": "sampled"}))
    assert full.per_user["sampled_rank"].to_list() == sampled.per_user["rank"].to_list()
    assert "sampled_rank" not in sampled.per_user.columns
    assert full.metrics["sampled_NDCG@10"] == sampled.metrics["NDCG@10"]
    assert full.metrics["sampled_tail_HR@10"] == sampled.metrics["tail_HR@10"]
    counts = np.zeros(ds.num_items + 1, dtype=int)
    for u in range(ds.num_users):
        np.add.at(counts, ds.history(u, "valid"), 1)  # training items: all but the last two
    targets = np.array([ds.target(u, "test") for u in range(ds.num_users)])
    assert full.per_user["tail"].to_list() == (counts[targets] < 29).tolist()
    assert 0 < full.metrics["tail_users"] < ds.num_users
