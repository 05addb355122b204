import pytest
import torch

from tslrec.config import BACKBONE_NAMES, ModelConfig
from tslrec.models import BACKBONES, IdEmbedding, build_model

CFG = dict(hidden_size=8, num_layers=2, num_heads=2, max_len=6, dropout=0.0)


def test_the_backbone_classes_are_the_configs_backbone_names():
    """config.BackboneName is the one list of names: models.BACKBONES maps exactly those."""
    assert tuple(BACKBONES) == BACKBONE_NAMES == ("sasrec", "gru4rec", "bert4rec")


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])
def test_scores_cover_the_catalogue_whatever_the_batch_width(name):
    torch.manual_seed(0)
    model = build_model(12, ModelConfig(name=name, **CFG)).eval()
    scores = model.score(torch.tensor([[0, 0, 3, 4, 5, 6]]))
    assert scores.shape == (1, 13)
    assert torch.allclose(scores, model.score(torch.tensor([[3, 4, 5, 6]])), atol=1e-6)
    longer = torch.tensor([[9, 9, 9, 0, 0, 3, 4, 5, 6]])  # only the last max_len columns count
    assert torch.allclose(scores, model.score(longer), atol=1e-6)
    assert not torch.allclose(scores, model.score(torch.tensor([[0, 0, 2, 4, 5, 6]])))


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


@pytest.mark.parametrize("mode", ["init", "adapter", "fusion"])
def test_enhanced_item_embeddings_train_and_round_trip(tmp_path, mode):
    from tslrec.models.item_embedding import build_item_embedding
    from tslrec.training.checkpoint import load_model, save_model

    torch.manual_seed(0)
    external = torch.randn(13, 24)
    embedding = build_item_embedding(mode, external, 8)
    table = embedding.table()
    assert table.shape == (13, 8) and torch.equal(table[0], torch.zeros(8))
    frozen = [name for name, p in embedding.named_parameters() if p.shape == external.shape]
    assert not frozen, "the external table is a frozen buffer, never a parameter"
    model = build_model(12, ModelConfig(name="sasrec", **CFG), embedding).eval()
    spec = {"mode": mode, "external_dim": 24}
    save_model(model, tmp_path / "m", {"item_embedding": spec})
    loaded, _ = load_model(tmp_path / "m")
    seqs = torch.tensor([[0, 1, 2, 3, 4, 5]])
    assert torch.allclose(model.score(seqs), loaded.eval().score(seqs))


def test_fusion_starts_differ_only_in_the_adapters_last_layer():
    from tslrec.models.item_embedding import build_item_embedding

    external = torch.randn(13, 24)
    built = {}
    for start in ("default", "zero", "small"):
        torch.manual_seed(0)
        built[start] = build_item_embedding("fusion", external, 8, adapter_start=start)
    default, zero, small = (built[s] for s in ("default", "zero", "small"))
    # a zero start is the plain id embedding: the model begins as the plain one
    assert torch.equal(zero.table(), zero.ids.table())
    last = [e.adapted.adapter[-1] for e in (default, small)]
    assert torch.allclose(last[1].weight, 0.1 * last[0].weight) and not last[1].bias.any()
    for name, value in default.state_dict().items():  # the same random draws otherwise
        if not name.startswith("adapted.adapter.3."):
            assert torch.equal(value, zero.state_dict()[name]), name
    with pytest.raises(ValueError, match="unknown adapter start 'tiny'"):
        build_item_embedding("fusion", external, 8, adapter_start="tiny")


def test_an_enhanced_embedding_comes_with_the_spec_a_checkpoint_rebuilds_it_from():
    from tslrec.models.item_embedding import build_item_embedding, enhanced_item_embedding

    external = torch.randn(13, 24)
    for start, spec in [
        ("default", {"mode": "fusion", "external_dim": 24}),  # the meta of models made before
        ("zero", {"mode": "fusion", "external_dim": 24, "adapter_start": "zero"}),
    ]:
        torch.manual_seed(0)
        embedding, got = enhanced_item_embedding("fusion", external, 8, 0.1, start)
        torch.manual_seed(0)
        built = build_item_embedding("fusion", external, 8, 0.1, start)
        assert got == spec and list(got) == list(spec)
        for name, value in built.state_dict().items():
            assert torch.equal(value, embedding.state_dict()[name]), name


def test_pca_init_keeps_the_standardised_geometry_at_init_scale():
    from tslrec.models.item_embedding import _standardise, pca_matrix

    torch.manual_seed(0)
    base = torch.randn(40, 3)
    external = torch.cat([torch.zeros(1, 30), base @ torch.randn(3, 30)])  # rank 3 in 30-D
    reduced = pca_matrix(external, 3)
    assert reduced.shape == (40, 3)
    assert reduced.std().item() == pytest.approx(0.02, rel=1e-3)
    # pairwise distances are preserved up to one scale factor: PCA of a rank-3 table is exact
    standard = _standardise(external)[1:]  # columns standardised first, then projected
    d_ext, d_red = torch.cdist(standard, standard), torch.cdist(reduced, reduced)
    off_diagonal = ~torch.eye(40, dtype=torch.bool)
    ratio = d_red[off_diagonal] / d_ext[off_diagonal]
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-3)


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_leading_padding_is_inert_so_training_batches_may_be_trimmed(name):
    torch.manual_seed(0)
    model = build_model(20, ModelConfig(name=name, hidden_size=16, max_len=8)).eval()
    seqs = torch.tensor([[0, 0, 0, 0, 3, 4, 5, 6], [0, 0, 0, 7, 8, 9, 1, 2]])
    full, _ = model(seqs)
    trimmed, _ = model(seqs[:, 3:])
    assert model.pads_are_inert
    assert torch.allclose(full[:, 3:][seqs[:, 3:] != 0], trimmed[seqs[:, 3:] != 0], atol=1e-6)


def test_dropout_keeps_its_share_scaled_up_and_is_the_identity_in_eval():
    from tslrec.models.layers import Dropout

    drop = Dropout(0.25)
    x = torch.ones(200, 500)
    torch.manual_seed(0)
    out = drop(x)
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.005)
    assert torch.allclose(out[kept], torch.tensor(4 / 3))  # the expectation is preserved
    torch.manual_seed(0)
    assert torch.equal(drop(x), out)  # deterministic under the seed
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0)(x), x)
    with pytest.raises(ValueError, match="not in"):
        Dropout(1.0)
