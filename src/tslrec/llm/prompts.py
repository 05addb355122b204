"""The one prompt template both LLM stages share: a user (real or virtual) as a list of items.

Stage 1 fine-tunes on prompts of real users' training prefixes; stage 2 feeds every item as a
one-item "virtual user" through the very same template, so the pooled state means the same thing.

Template ``TEMPLATE_VERSION = "tslrec-prompt-v1"`` (token ids, built piece by piece)::

    [BOS, only if the tokenizer adds one by default]
    HEADER              "Recommendation task. The user's interactions, oldest first:"
    for each kept item, oldest first:
        ITEM_PREFIX + <item>   "\\n-" then the rendered item (below)
    FOOTER              "\\nThe user's preferences:"

Each piece is tokenized on its own (``add_special_tokens=False``) and the ids are concatenated, so
an item always contributes the same ids wherever it appears and the budget is exact. The pooled
state (last real token) is always the FOOTER's final ":" token, which has attended to every item.

Item renderings (``PromptConfig.rendering``):

- ``id_text``: " item_17" (plain text; the digits carry no meaning: a baseline).
- ``id_token``: one added vocabulary token ``<item_17>`` per item (``ITEM_TOKEN_FORMAT``); its
  embedding row is trained during fine-tuning (see ``preference_model``).
- ``title``: " " + title, cut to ``max_title_tokens`` tokens.
- ``title+attrs``: the title as above, then " | " + attributes, also cut to ``max_title_tokens``.
  An item with no (or an empty) title falls back to its ``id_text`` rendering in both title modes.

Budget: at most ``max_items`` most recent items are kept, then the oldest are dropped until the
whole prompt fits ``max_tokens``. HEADER and FOOTER are never cut; if they and the newest item do
not fit, building fails with a message naming the setting to raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from tslrec.config import PromptConfig
from tslrec.errors import TslrecError

TEMPLATE_VERSION = "tslrec-prompt-v1"
HEADER = "Recommendation task. The user's interactions, oldest first:"
ITEM_PREFIX = "\n-"
FOOTER = "\nThe user's preferences:"
ITEM_TOKEN_FORMAT = "<item_{}>"
ID_TEXT_FORMAT = " item_{}"
ATTR_SEPARATOR = " | "


def add_item_tokens(tokenizer: PreTrainedTokenizerBase, num_items: int) -> list[int]:
    """Add ``<item_1>`` .. ``<item_N>`` to the vocabulary; return ids with index 0 = -1 (padding).

    Adding is idempotent: tokens already present keep their ids, so building a second prompt
    builder on the same tokenizer (e.g. stage 2 after stage 1) yields the same ids.
    """
    tokens = [ITEM_TOKEN_FORMAT.format(i) for i in range(1, num_items + 1)]
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    unk = tokenizer.unk_token_id
    if any(t is None or (unk is not None and t == unk) for t in ids):
        raise TslrecError("the tokenizer did not accept the new item tokens")
    return [-1, *ids]


class PromptBuilder:
    """Turn a sequence of item ids into the token ids of the versioned prompt template."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        cfg: PromptConfig,
        num_items: int,
        titles: Sequence[str | None] | None = None,
        attributes: Sequence[str | None] | None = None,
    ) -> None:
        if cfg.rendering in ("title", "title+attrs") and titles is None:
            raise TslrecError(
                f"prompt.rendering = '{cfg.rendering}' needs item titles, but this dataset has "
                "none; use 'id_token' or 'id_text'"
            )
        for name, texts in (("titles", titles), ("attributes", attributes)):
            if texts is not None and len(texts) != num_items + 1:
                raise TslrecError(
                    f"{name} must have N+1 = {num_items + 1} entries, got {len(texts)}"
                )
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.num_items = num_items
        self.titles = titles
        self.attributes = attributes if cfg.rendering == "title+attrs" else None
        self.item_token_ids: list[int] = (
            add_item_tokens(tokenizer, num_items) if cfg.rendering == "id_token" else []
        )
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("a").input_ids[:1] == [bos]
        self._head = ([bos] if adds_bos else []) + self._encode(HEADER)
        self._item_prefix = self._encode(ITEM_PREFIX)
        self._foot = self._encode(FOOTER)
        self._cache: dict[int, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Size of the vocabulary including any added item tokens (the embedding rows needed)."""
        return len(self.tokenizer)

    @property
    def fixed_length(self) -> int:
        """Tokens every prompt spends on the instruction, whatever its items."""
        return len(self._head) + len(self._foot)

    def describe(self) -> dict[str, Any]:
        """What a run should record to say exactly which prompts it used."""
        return {
            "template_version": TEMPLATE_VERSION,
            "rendering": self.cfg.rendering,
            "max_items": self.cfg.max_items,
            "max_tokens": self.cfg.max_tokens,
            "max_title_tokens": self.cfg.max_title_tokens,
            "header": HEADER,
            "item_prefix": ITEM_PREFIX,
            "footer": FOOTER,
        }

    def item_ids(self, item: int) -> list[int]:
        """Token ids of one item's line (prefix + rendering), cached since items repeat a lot."""
        cached = self._cache.get(item)
        if cached is None:
            if not 1 <= item <= self.num_items:
                raise TslrecError(f"item id {item} is outside 1..{self.num_items}")
            cached = self._item_prefix + self._render(item)
            self._cache[item] = cached
        return cached

    def shown(self, items: Sequence[int]) -> list[int]:
        """The items of ``items`` a prompt shows: the most recent ``max_items`` real ones, less
        the oldest while the prompt would pass ``max_tokens``."""
        history = [int(i) for i in items if int(i) > 0][-self.cfg.max_items :]
        pieces = [self.item_ids(i) for i in history]
        budget = self.cfg.max_tokens - self.fixed_length
        used = sum(len(p) for p in pieces)
        start = 0
        while used > budget and start < len(pieces):
            used -= len(pieces[start])
            start += 1
        if pieces and start == len(pieces):
            raise TslrecError(
                f"prompt.max_tokens = {self.cfg.max_tokens} cannot hold the instruction "
                f"({self.fixed_length} tokens) plus one item ({len(pieces[-1])} tokens); raise it "
                "or lower prompt.max_title_tokens"
            )
        return history[start:]

    def build(self, items: Sequence[int]) -> list[int]:
        """Prompt token ids for a user whose history is ``items`` (chronological, 0 = padding)."""
        out = list(self._head)
        for item in self.shown(items):
            out.extend(self.item_ids(item))
        out.extend(self._foot)
        return out

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _render(self, item: int) -> list[int]:
        rendering = self.cfg.rendering
        if rendering == "id_token":
            return [self.item_token_ids[item]]
        if rendering == "id_text":
            return self._id_text(item)
        title = _clean(self.titles[item]) if self.titles is not None else ""
        limit = self.cfg.max_title_tokens
        ids = self._encode(" " + title)[:limit] if title else self._id_text(item)
        attrs = _clean(self.attributes[item]) if self.attributes is not None else ""
        if attrs:
            ids = ids + self._encode(ATTR_SEPARATOR + attrs)[:limit]
        return ids

    def _id_text(self, item: int) -> list[int]:
        return self._encode(ID_TEXT_FORMAT.format(item))


def _clean(text: object) -> str:
    """Collapse whitespace (a newline would break one item per line); None/NaN -> ""."""
    return " ".join(text.split()) if isinstance(text, str) else ""
