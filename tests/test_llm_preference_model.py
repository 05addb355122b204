"""Pooling under both padding sides, the losses, and the trainable-state round trip."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from tslrec.config import PromptConfig, SFTConfig
from tslrec.errors import TslrecError
from tslrec.llm.preference_model import (
    PreferenceModel,
    grow_embeddings,
    last_token_pool,
    mean_pool,
    position_ids_from_mask,
    preference_loss,
)
from tslrec.llm.prompts import PromptBuilder


def _pad(seqs: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids, mask = [], []
    for s in seqs:
        gap = width - len(s)
        ids.append(s + [0] * gap if side == "right" else [0] * gap + s)
        mask.append([1] * len(s) + [0] * gap if side == "right" else [0] * gap + [1] * len(s))
    return torch.tensor(ids), torch.tensor(mask)


def _model(tok_model, k: int = 3, **sft) -> tuple[PreferenceModel, PromptBuilder]:
    llm, tok = tok_model
    builder = PromptBuilder(tok, PromptConfig(rendering="id_token", max_tokens=64), 10)
    torch.manual_seed(0)
    model = PreferenceModel(llm, k, SFTConfig(**sft), builder.item_token_ids, builder.vocab_size)
    return model.eval(), builder


def test_last_token_pool_hand_made() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_pool(hidden, right).view(-1).tolist() == [1.0, 7.0]
    assert last_token_pool(hidden, left).view(-1).tolist() == [3.0, 7.0]
    assert mean_pool(hidden, right).view(-1).tolist() == [0.5, 5.5]
    assert position_ids_from_mask(left).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_pooled_states_identical_for_left_and_right_padding(tiny_lm, pooling) -> None:
    model, builder = _model(tiny_lm)
    seqs = [builder.build([1, 2, 3, 4]), builder.build([5]), builder.build([6, 7])]
    with torch.no_grad():
        right = model.encode(*_pad(seqs, "right"), pooling=pooling)
        left = model.encode(*_pad(seqs, "left"), pooling=pooling)
        alone = torch.cat([model.encode(*_pad([s], "right"), pooling=pooling) for s in seqs])
    assert right.shape == (3, 32) and right.dtype == torch.float32
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, right, atol=1e-5, rtol=1e-5)


def test_forward_shapes_and_trainable_parameters(tiny_lm) -> None:
    model, builder = _model(tiny_lm, k=4)
    pooled, g_hat = model(*_pad([builder.build([1, 2])], "right"))
    assert pooled.shape == (1, 32) and g_hat.shape == (1, 4)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and "head.weight" in names
    assert any("trainable_tokens_delta" in n for n in names)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("embed_tokens" in n for n in frozen)  # the full matrix stays frozen


def test_losses() -> None:
    target = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    g_hat = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert math.isclose(preference_loss(g_hat, target, "mse").item(), 1 / 6, rel_tol=1e-6)
    exact = torch.log(torch.tensor([[1.0, 1.0, 1e-9], [1e-9, 1e-9, 1.0]]))
    assert preference_loss(exact, target, "kl").item() < 1e-6
    uniform = torch.zeros(1, 3)  # softmax = 1/3 each; KL(one-hot || uniform) = log 3
    kl = preference_loss(uniform, target[1:], "kl").item()
    assert math.isclose(kl, math.log(3), rel_tol=1e-5)


def test_trainable_state_round_trip(tiny_lm_factory) -> None:
    a, builder = _model(tiny_lm_factory())
    with torch.no_grad():
        for p in a.parameters():
            if p.requires_grad:
                p.add_(0.1)
    b, _ = _model(tiny_lm_factory())
    b.load_trainable_state_dict(a.trainable_state_dict())
    ids = _pad([builder.build([3, 4])], "right")
    with torch.no_grad():
        torch.testing.assert_close(a(*ids)[1], b(*ids)[1])
    c, _ = _model(tiny_lm_factory(), k=5)
    with pytest.raises(TslrecError):
        c.load_trainable_state_dict(a.trainable_state_dict())
    with pytest.raises(TslrecError, match="target_modules"):
        _model(tiny_lm_factory(), target_modules=["no_such_proj"])


def test_lora_layers_puts_adapters_on_the_last_layers_only(tiny_lm) -> None:
    llm, _ = tiny_lm
    model = PreferenceModel(llm, 4, SFTConfig(lora_layers=1, target_modules=["q_proj"]))
    adapted = {
        n.split(".layers.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_A" in n
    }
    assert adapted == {str(llm.config.num_hidden_layers - 1)}


def test_wrapping_the_llm_prints_no_deprecation_warning_from_peft(tiny_lm_factory) -> None:
    """peft asks transformers 5 for a deprecated attribute: noise in every user's log."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _model(tiny_lm_factory())


def test_item_rows_are_drawn_alike_where_the_vocabulary_is_padded(tiny_lm_factory) -> None:
    """Padded matrices (Qwen's) already have rows for the new ids, left over from training: they
    get the same seeded rows as a matrix grown to fit, not what was there."""
    rows = {}
    for padding in (0, 16):
        llm, tok = tiny_lm_factory()
        llm.resize_token_embeddings(len(tok) + padding, mean_resizing=False)
        with torch.no_grad():
            llm.get_input_embeddings().weight[len(tok) :] = 1e3
        builder = PromptBuilder(tok, PromptConfig(rendering="id_token", max_tokens=64), 10)
        ids = builder.item_token_ids[1:]
        grow_embeddings(llm, builder.vocab_size, ids)
        weight = llm.get_input_embeddings().weight
        assert weight.shape[0] == len(tok) + max(0, padding - 10)
        rows[padding] = weight[ids].clone()
        assert weight[: ids[0]].abs().max() < 1e3  # the pretrained rows are untouched
    assert rows[0].abs().max() < 10 and rows[0].std(dim=0).min() > 0
    torch.testing.assert_close(rows[16], rows[0])


def test_an_item_token_past_the_vocabulary_is_named_before_any_row_is_written(tiny_lm) -> None:
    llm, tok = tiny_lm
    before = llm.get_input_embeddings().weight.clone()
    with pytest.raises(TslrecError, match=rf"token id {len(tok) + 5} has no embedding row"):
        PreferenceModel(llm, 3, SFTConfig(), [-1, len(tok) + 5], vocab_size=len(tok))
    torch.testing.assert_close(llm.get_input_embeddings().weight, before)


def test_readouts_computed_by_hand() -> None:
    from tslrec.llm.preference_model import readout

    hidden = torch.tensor([[0.0, 0.0], [4.0, 3.0], [1.0, 5.0]])
    center = torch.tensor([1.0, -1.0])
    weight, bias = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0.5, 0.0])
    assert readout(hidden, center, weight, bias, "hidden") is hidden
    normalized = readout(hidden, center, weight, bias, "normalized")
    # (4,3)-(1,-1) = (3,4), norm 5; (1,5)-(1,-1) = (0,6), norm 6; row 0 (padding) stays 0
    torch.testing.assert_close(normalized, torch.tensor([[0.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    head = readout(hidden, center, weight, bias, "head")
    torch.testing.assert_close(head, torch.tensor([[0.0, 0.0], [1.1, 1.6], [0.5, 2.0]]))


def test_head_accuracy_computed_by_hand() -> None:
    import numpy as np

    from tslrec.llm.transmission import head_accuracy

    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    labels = np.array([0, 1, 2, 0])  # ranks 1, 2, 2, 3
    figures = head_accuracy(scores, labels)
    assert figures.top1 == 0.25 and figures.mean_rank == 2.0
    assert figures.top5 == 1.0 and figures.top5_chance == 1.0  # K = 3 < 5
    assert figures.majority_rate == 0.5 and figures.categories_predicted == 3


def test_item_rows_started_from_stage0_keep_its_structure(tiny_lm) -> None:
    from tslrec.llm.preference_model import item_start_rows

    llm, tok = tiny_lm
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(10, 6, generator=gen)
    table[1] = table[0] + 1e-3  # items 1 and 2 are neighbours in stage 0, item 10 is far
    start = item_start_rows(table, 32)
    torch.testing.assert_close(start, item_start_rows(table, 32))  # fixed projection
    assert start.shape == (10, 32)
    torch.testing.assert_close(start.mean(dim=0), torch.zeros(32), atol=1e-5, rtol=0)
    builder = PromptBuilder(tok, PromptConfig(rendering="id_token", max_tokens=64), 10)
    ids = builder.item_token_ids[1:]
    grow_embeddings(llm, builder.vocab_size, ids, start)
    rows = llm.get_input_embeddings().weight[ids].detach()
    assert torch.dist(rows[0], rows[1]) < 0.05 * torch.dist(rows[0], rows[9])
    with pytest.raises(TslrecError, match="item start rows have shape"):
        grow_embeddings(llm, builder.vocab_size, ids, start[:, :5])
