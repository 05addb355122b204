"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from synthetic import cyclic_sequences, tiny_config, write_interactions_csv

# --- tiny causal LM (tests/test_llm_*.py) -------------------------------------------------------
# A 2-layer random Llama and a word-level tokenizer built in code: no download, milliseconds to
# build, yet the same classes (LlamaForCausalLM, PreTrainedTokenizerFast) as the real SmolLM2.

TINY_VOCAB_SIZE = 300
TINY_TITLE_TEXT = (
    "toy story alien heat matrix star wars return of the jedi godfather love actually "
    "comedy drama action horror sci fi romance thriller animation classic war crime"
)


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tslrec.llm.prompts import FOOTER, HEADER

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    words: list[str] = []
    pre = pre_tokenizers.Whitespace()
    for text in (HEADER, FOOTER, "- |", TINY_TITLE_TEXT):
        words += [w.lower() for w, _ in pre.pre_tokenize_str(text)]
    words += [f"item_{i}" for i in range(1, 101)]
    vocab: dict[str, int] = {}
    for w in specials + words:
        vocab.setdefault(w, len(vocab))
    for i in range(TINY_VOCAB_SIZE - len(vocab)):
        vocab[f"filler{i}"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre
    tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def _tiny_llm(seed: int = 0, tie: bool = True):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


@pytest.fixture
def tiny_lm_factory() -> Callable:
    """Call it for a fresh ``(model, tokenizer)`` pair; the same seed gives identical weights."""

    def make(seed: int = 0, tie: bool = True):
        return _tiny_llm(seed, tie), _tiny_tokenizer()

    return make


@pytest.fixture
def tiny_lm(tiny_lm_factory):
    """A fresh tiny ``(model, tokenizer)``: tests may add tokens or wrap the model freely."""
    return tiny_lm_factory()


# --- a tiny TSLRec pipeline (tests/test_pipeline.py, test_experiment.py, test_report.py) ---------


@pytest.fixture()
def pipeline_config(tmp_path, tiny_lm):
    model, tokenizer = tiny_lm
    model.save_pretrained(tmp_path / "tiny-llm")
    tokenizer.save_pretrained(tmp_path / "tiny-llm")
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())

    def make(**sections):
        base = {
            "llm": {"model": str(tmp_path / "tiny-llm")},
            "categories": {"k": 4},
            "prompt": {"rendering": "id_token", "max_items": 5},
            "sft": {"epochs": 1, "batch_size": 8, "target_modules": ["q_proj", "v_proj"]},
            "enhance": {"backbones": ["sasrec", "gru4rec"], "mode": "adapter"},
            "train": {"epochs": 3},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return tiny_config(tmp_path, csv, **base)

    return make
