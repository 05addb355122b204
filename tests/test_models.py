import pytest
import torch

from tslrec.config import ModelConfig
from tslrec.models import IdEmbedding, build_model

CFG = dict(hidden_size=8, num_layers=2, num_heads=2, max_len=6, dropout=0.0)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])
def test_scores_cover_the_catalogue_and_ignore_extra_left_padding(name):
    torch.manual_seed(0)
    model = build_model(12, ModelConfig(name=name, **CFG)).eval()
    short = torch.tensor([[0, 0, 3, 4, 5, 6]])
    scores = model.score(short)
    assert scores.shape == (1, 13)
    if name != "gru4rec":  # the recurrent state does see the (zero) padding steps
        more_padding = torch.tensor([[0, 0, 0, 4, 5, 6]])
        assert not torch.allclose(scores, model.score(more_padding)), "the oldest item must matter"


def test_sasrec_is_causal_a_position_never_sees_later_items():
    torch.manual_seed(0)
    model = build_model(12, ModelConfig(name="sasrec", **CFG)).eval()
    a = torch.tensor([[0, 1, 2, 3, 4, 5]])
    b = torch.tensor([[0, 1, 2, 3, 9, 11]])
    ha, _ = model(a)
    hb, _ = model(b)
    assert torch.allclose(ha[:, :4], hb[:, :4], atol=1e-6)
    assert not torch.allclose(ha[:, 4:], hb[:, 4:])


def test_item_embeddings_round_trip_through_an_external_matrix():
    matrix = torch.randn(12, 8)
    model = build_model(12, ModelConfig(name="sasrec", **CFG), IdEmbedding(12, 8, init=matrix))
    assert torch.equal(model.item_embeddings(), matrix)
    assert torch.equal(model.item_embedding.table()[0], torch.zeros(8))
    with pytest.raises(ValueError, match=r"\(12, 8\)"):
        IdEmbedding(12, 8, init=torch.randn(11, 8))


def test_recommend_skips_seen_items_and_padding():
    torch.manual_seed(0)
    model = build_model(6, ModelConfig(name="sasrec", **CFG)).eval()
    items, _ = model.recommend(torch.tensor([[0, 0, 0, 1, 2, 3]]), k=3)
    assert sorted(items[0].tolist()) == [4, 5, 6]
