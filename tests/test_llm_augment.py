"""Stage 2: one-item virtual users -> (N+1, D) table; row 0, metadata, resume after a crash."""

from __future__ import annotations

import json

import pytest
import torch

from tslrec.config import AugmentConfig, PromptConfig, SFTConfig
from tslrec.io import read_json
from tslrec.llm.augment import embed_items, load_item_embeddings, partial_path, stats_path
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.prompts import PromptBuilder
from tslrec.llm.sft_batches import pad_batch

N = 11
TITLES = [None, *[f"toy story {'alien ' * (i % 4)}" for i in range(1, N)], None]


def _model(tok_model, rendering: str = "title"):
    llm, tok = tok_model
    builder = PromptBuilder(tok, PromptConfig(rendering=rendering, max_tokens=64), N, titles=TITLES)
    torch.manual_seed(0)
    cfg = SFTConfig(lora_dropout=0.5)
    model = PreferenceModel(llm, 3, cfg, builder.item_token_ids, builder.vocab_size)
    with torch.no_grad():  # as if trained: non-zero LoRA B (so dropout would show) and head
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model, builder


def test_embed_items_shape_rows_and_metadata(tiny_lm, tmp_path) -> None:
    model, builder = _model(tiny_lm)
    out = tmp_path / "items.safetensors"
    model.train()  # dropout on: embed_items must switch it off, then restore the mode
    table = embed_items(model, builder, N, AugmentConfig(batch_size=4), out)
    assert model.training
    model.eval()
    assert table.shape == (N + 1, 32) and table.dtype == torch.float32
    assert torch.count_nonzero(table[0]) == 0 and torch.all(table[1:].abs().sum(dim=1) > 0)
    ids, mask = pad_batch([builder.build([7])])
    with torch.no_grad():
        alone = model.encode(ids, mask)
    torch.testing.assert_close(table[7:8], alone, atol=1e-5, rtol=1e-5)
    saved, meta = load_item_embeddings(out)
    torch.testing.assert_close(saved, table)
    assert json.loads(meta["item_ids"]) == list(range(N + 1)) and meta["pooling"] == "last"
    assert read_json(stats_path(out))["computed"] == N and not partial_path(out).exists()


def test_embed_items_resumes_after_interruption(tiny_lm_factory, tmp_path, monkeypatch) -> None:
    cfg = AugmentConfig(batch_size=2, pooling="mean")
    model, builder = _model(tiny_lm_factory(), "id_token")
    reference = embed_items(model, builder, N, cfg, tmp_path / "ref.safetensors")

    model, builder = _model(tiny_lm_factory(), "id_token")
    out = tmp_path / "items.safetensors"
    real_encode, calls = model.encode, []

    def crashing_encode(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(model, "encode", crashing_encode)
    with pytest.raises(KeyboardInterrupt):
        embed_items(model, builder, N, cfg, out, save_every=1)
    assert partial_path(out).exists() and not out.exists()
    monkeypatch.setattr(model, "encode", real_encode)
    table = embed_items(model, builder, N, cfg, out)
    stats = read_json(stats_path(out))
    assert stats["resumed"] == 6 and stats["computed"] == N - 6
    torch.testing.assert_close(table, reference, atol=1e-5, rtol=1e-5)
    assert not partial_path(out).exists()
    # a finished table is returned as is; a different model recomputes it
    assert torch.equal(embed_items(model, builder, N, cfg, out), table)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    embed_items(model, builder, N, cfg, out)
    assert read_json(stats_path(out))["computed"] == N


def test_embed_items_without_a_path_writes_nothing_and_gives_the_same_table(
    tiny_lm, tmp_path, monkeypatch
) -> None:
    model, builder = _model(tiny_lm)
    cfg = AugmentConfig(batch_size=4)
    saved = embed_items(model, builder, N, cfg, tmp_path / "items.safetensors")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    in_memory = embed_items(model, builder, N, cfg, None, save_every=1)
    assert not any((tmp_path / "empty").iterdir())
    torch.testing.assert_close(in_memory, saved)
