"""The shared prompt template: renderings, truncation, token budget, determinism."""

from __future__ import annotations

import pytest

from tslrec.config import PromptConfig
from tslrec.errors import TslrecError
from tslrec.llm.prompts import TEMPLATE_VERSION, PromptBuilder

TITLES = [None, "toy story", "alien", None, "star wars return of the jedi", "  heat\nmatrix "]
ATTRS = [None, "animation comedy", None, "drama", "sci fi action", None]


def _builder(tok, **kw) -> PromptBuilder:
    kw.setdefault("max_tokens", 200)
    return PromptBuilder(tok, PromptConfig(**kw), 5, titles=TITLES, attributes=ATTRS)


def _text(tok, ids) -> str:
    return tok.decode(ids)


def test_title_template_exact(tiny_lm) -> None:
    _, tok = tiny_lm
    b = _builder(tok, rendering="title", max_title_tokens=3)
    text = _text(tok, b.build([1, 3, 4, 5]))
    assert text == (
        "recommendation task . the user ' s interactions , oldest first : "
        "- toy story - item_3 - star wars return - heat matrix "
        "the user ' s preferences :"
    )
    assert b.describe()["template_version"] == TEMPLATE_VERSION


def test_title_attrs_and_id_text(tiny_lm) -> None:
    _, tok = tiny_lm
    ids = _builder(tok, rendering="title+attrs", max_title_tokens=2).build([1, 3])
    assert "- toy story | animation - item_3 | drama" in _text(tok, ids)
    ids = _builder(tok, rendering="id_text").build([2, 5])
    assert "- item_2 - item_5 the" in _text(tok, ids)


def test_id_token_one_new_token_per_item(tiny_lm) -> None:
    _, tok = tiny_lm
    base = len(tok)
    b = PromptBuilder(tok, PromptConfig(rendering="id_token"), 5)
    assert b.item_token_ids[0] == -1 and len(set(b.item_token_ids[1:])) == 5
    assert min(b.item_token_ids[1:]) >= base and b.vocab_size == base + 5
    ids = b.build([4, 2])
    assert ids.index(b.item_token_ids[4]) < ids.index(b.item_token_ids[2])
    assert tok.convert_ids_to_tokens(b.item_token_ids[4]) == "<item_4>"
    again = PromptBuilder(tok, PromptConfig(rendering="id_token"), 5)  # idempotent
    assert again.item_token_ids == b.item_token_ids and len(tok) == base + 5


def test_budget_drops_oldest_items_never_the_instruction(tiny_lm) -> None:
    _, tok = tiny_lm
    full = _builder(tok, rendering="title", max_title_tokens=6)
    head = full.build([])[: -len(full._foot)]
    foot = full._foot
    items = [1, 2, 3, 4, 5]
    for max_tokens in (60, 40, 35, 30):
        b = _builder(tok, rendering="title", max_title_tokens=6, max_tokens=max_tokens)
        ids = b.build(items)
        assert len(ids) <= max_tokens
        assert ids[: len(head)] == head and ids[-len(foot) :] == foot
        body = ids[len(head) : -len(foot)]
        kept = []  # which suffix of the history survived
        for n in range(len(items) + 1):
            tail = items[len(items) - n :]
            if [t for i in tail for t in b.item_ids(i)] == body:
                kept = tail
        assert kept and kept[-1] == 5  # the newest item always survives
        more = items[len(items) - len(kept) - 1 :] if len(kept) < len(items) else None
        if more is not None:
            assert b.fixed_length + sum(len(b.item_ids(i)) for i in more) > max_tokens


def test_max_items_and_padding_ids(tiny_lm) -> None:
    _, tok = tiny_lm
    b = _builder(tok, rendering="id_text", max_items=2)
    assert b.build([0, 0, 1, 2, 3]) == b.build([2, 3])
    assert "item_1" not in _text(tok, b.build([1, 2, 3]))


def test_deterministic_across_tokenizer_instances(tiny_lm_factory) -> None:
    outs = []
    for _ in range(2):
        _, tok = tiny_lm_factory()
        outs.append(_builder(tok, rendering="title+attrs").build([5, 1, 4]))
    assert outs[0] == outs[1]
    _, tok = tiny_lm_factory()
    assert _text(tok, outs[0]).startswith("recommendation task .")
    assert _text(tok, outs[0]).endswith("preferences :")


def test_prompt_errors(tiny_lm) -> None:
    _, tok = tiny_lm
    with pytest.raises(TslrecError, match="titles"):
        PromptBuilder(tok, PromptConfig(rendering="title"), 5)
    with pytest.raises(TslrecError, match="N\\+1"):
        PromptBuilder(tok, PromptConfig(rendering="title"), 4, titles=TITLES)
    b = _builder(tok, rendering="title", max_tokens=20)
    with pytest.raises(TslrecError, match="max_tokens"):
        b.build([4])
    with pytest.raises(TslrecError):
        b.build([9])
