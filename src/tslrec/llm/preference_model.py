"""The stage-1 model: a causal LM with LoRA adapters whose pooled state predicts g_u.

h_u is the final-layer hidden state (final norm applied) of the last real token of the prompt;
g_hat = W normalize(h_u - c) + b, c a fixed centre (``PreferenceModel.forward`` says why).
Training it to reconstruct the user's category distribution makes h_u a summary of preference,
which stage 2 reads out for one-item "virtual users".

Only the decoder stack is run (never the LM head): the vocabulary projection would cost more than
the rest of a small model and its output is unused.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from tslrec.config import SFTConfig
from tslrec.errors import TslrecError

Pooling = Literal["last", "mean"]
NEW_TOKEN_INIT_SEED = 0  # new item-token rows are drawn from a fixed generator: reproducible


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at each row's last real position (B, D); works for left or right padding.

    The last real position is the largest index whose mask is 1, found without assuming where
    the padding sits.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * attention_mask.long()).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states over real positions only (B, D)."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens, whatever the padding side, so left padding shifts nothing."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def preference_loss(g_hat: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """MSE to g_u (the paper), or KL(g_u || softmax(g_hat)) averaged over the batch."""
    target = target.to(g_hat.dtype)
    if loss == "mse":
        return F.mse_loss(g_hat, target)
    if loss == "kl":
        return F.kl_div(F.log_softmax(g_hat, dim=-1), target, reduction="batchmean")
    raise TslrecError(f"sft.loss '{loss}': expected 'mse' or 'kl'")


def grow_embeddings(
    llm: PreTrainedModel,
    vocab_size: int,
    new_token_ids: Sequence[int],
    start: torch.Tensor | None = None,
) -> None:
    """Give tokens added to the tokenizer (e.g. item tokens) embedding rows of their own.

    Their rows are drawn around the mean/std of the rows before them with a fixed seed, so they
    look like ordinary tokens, differ from each other, and are identical in every process. That
    holds too where the matrix already has rows for them: vocabularies padded to a round size
    (Qwen's, for one) keep unused rows past the tokenizer, holding whatever training left there.
    ``start`` (one row per new token, in id order, standardised) replaces the random draw: the
    rows then sit at the same mean and spread but carry its structure (``item_start_rows``).
    """
    if llm.get_input_embeddings().weight.shape[0] < vocab_size:
        llm.resize_token_embeddings(vocab_size, mean_resizing=False)
    new = sorted(new_token_ids)
    if not new:
        return
    weight = llm.get_input_embeddings().weight
    with torch.no_grad():
        base = weight[: new[0]].float()
        gen = torch.Generator().manual_seed(NEW_TOKEN_INIT_SEED)
        noise = torch.randn(len(new), weight.shape[1], generator=gen) if start is None else start
        if noise.shape != (len(new), weight.shape[1]):
            raise TslrecError(
                f"item start rows have shape {tuple(noise.shape)}, "
                f"expected {(len(new), weight.shape[1])}"
            )
        rows = base.mean(dim=0) + base.std(dim=0) * noise.float()
        weight[torch.tensor(new, device=weight.device)] = rows.to(weight.dtype).to(weight.device)


def item_start_rows(table: torch.Tensor, dim: int, seed: int = NEW_TOKEN_INIT_SEED) -> torch.Tensor:
    """Stage 0's item table (N, H) through a fixed seeded random projection to the LLM's width,
    standardised per dimension: item rows that start where the collaborative space puts them
    (``sft.item_rows = stage0``), at the spread of the random start."""
    gen = torch.Generator().manual_seed(seed)
    projection = torch.randn(table.shape[1], dim, generator=gen) / table.shape[1] ** 0.5
    rows = table.float() @ projection
    return (rows - rows.mean(dim=0)) / rows.std(dim=0).clamp_min(1e-8)


def last_layers(llm: PreTrainedModel, count: int | None) -> list[int] | None:
    """Indices of the last `count` decoder layers (None: all layers get adapters)."""
    if count is None:
        return None
    total = int(llm.config.num_hidden_layers)
    return list(range(max(0, total - count), total))


HEAD_INIT_STD = 0.02  # `random` head rows: outputs start within ~0.02 of the uniform 1/K


def init_head(head: nn.Linear, loss: str, init: str = "zero") -> None:
    """Start near the uninformed prediction: bias = uniform 1/K (MSE) or 0 (KL), and zero or
    small random weights.

    The head reads a unit vector, so rows of std ``HEAD_INIT_STD`` move each output by about
    that much: close to uniform, yet the gradient reaching the adapters, W^T dL/dg, is not zero
    on the first step as it is with zero weights.
    """
    with torch.no_grad():
        if init == "zero":
            head.weight.zero_()
        else:
            head.weight.normal_(0.0, HEAD_INIT_STD)
        head.bias.fill_(1.0 / head.out_features if loss == "mse" else 0.0)


def head_input(pooled: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """What the head reads: the pooled state minus the centre, L2-normalised."""
    return F.normalize(pooled - center.to(pooled.dtype), dim=-1)


def readout(
    hidden: torch.Tensor, center: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, what: str
) -> torch.Tensor:
    """Stage 2's table as the backbones get it, from the pooled states (N+1, D); row 0 stays 0.

    ``hidden``: the states themselves; ``normalized``: what the head reads; ``head``: its K-dim
    output. Computed from the head's weights alone, so no LLM is needed to switch."""
    if what == "hidden":
        return hidden
    features = head_input(hidden.float(), center.float())
    if what == "head":
        features = features @ weight.float().T + bias.float()
    elif what != "normalized":
        raise TslrecError(f"augment.features '{what}': expected hidden, normalized or head")
    features[0] = 0.0
    return features


class PreferenceModel(nn.Module):
    """LLM + LoRA (+ trainable item-token rows) + a linear head to the K categories."""

    def __init__(
        self,
        llm: PreTrainedModel,
        num_categories: int,
        cfg: SFTConfig,
        trainable_token_ids: Sequence[int] | None = None,
        vocab_size: int | None = None,
        start_rows: torch.Tensor | None = None,
    ) -> None:
        """Wrap ``llm`` (modified in place by peft).

        ``trainable_token_ids``: vocabulary ids whose embedding rows train alongside the adapters
        (the ``id_token`` item tokens; pass ``builder.item_token_ids``, index 0 = -1 is ignored).
        ``vocab_size``: grow the embedding matrix to this size first (pass ``builder.vocab_size``).
        ``start_rows``: where the new rows start (``grow_embeddings``), default a seeded draw.
        """
        super().__init__()
        token_ids = sorted({int(t) for t in (trainable_token_ids or []) if int(t) >= 0})
        rows = max(llm.get_input_embeddings().weight.shape[0], vocab_size or 0)
        if token_ids and token_ids[-1] >= rows:
            raise TslrecError(
                f"token id {token_ids[-1]} has no embedding row ({rows} rows); pass vocab_size"
            )
        if vocab_size is not None:
            grow_embeddings(llm, vocab_size, token_ids, start_rows)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            bias="none",
            trainable_token_indices=token_ids or None,
            layers_to_transform=None if token_ids else last_layers(llm, cfg.lora_layers),
        )
        try:
            with warnings.catch_warnings():
                # peft asks for `is_gradient_checkpointing`, which transformers 5 deprecates: a
                # warning per model that the user can do nothing about
                warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
                self.llm: PeftModel = get_peft_model(llm, lora)
        except ValueError as err:
            raise TslrecError(f"sft.target_modules {cfg.target_modules}: {err}") from None
        self.hidden_size = int(llm.config.hidden_size)
        self.num_categories = num_categories
        self.loss_name = cfg.loss
        self.trainable_token_ids = token_ids
        self.head = nn.Linear(self.hidden_size, num_categories)
        init_head(self.head, cfg.loss, cfg.head_init)
        # zero until `set_center`: then the head reads the plain L2-normalised state
        self.register_buffer("center", torch.zeros(self.hidden_size))

    def set_center(self, center: torch.Tensor) -> None:
        """Fix the state the head subtracts (``sft.center``): the untuned LLM's mean state."""
        with torch.no_grad():
            self.center.copy_(center.to(self.center.dtype))

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling = "last"
    ) -> torch.Tensor:
        """Pooled final-layer state (B, D) in float32: h_u for a prompt."""
        decoder = self.llm.get_base_model().get_decoder()
        out = decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        hidden = out.last_hidden_state
        pooled = (
            last_token_pool(hidden, attention_mask)
            if pooling == "last"
            else mean_pool(hidden, attention_mask)
        )
        return pooled.float()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(pooled h_u, g_hat)``; the head reads normalize(h_u - centre).

        LLM final states are large and nearly parallel across prompts (SmolLM2: norm ~45,
        L1 ~600, cosine ~0.999 between users), and Adam moves a linear head's output by about
        lr * ||input||_1 per step, which on raw states overshoots the targets (~1/K) at once.
        Normalising makes the step size independent of the backbone's activation scale, and
        subtracting the centre (the part every prompt shares) leaves the part that differs.
        """
        pooled = self.encode(input_ids, attention_mask, "last")
        return pooled, self.head(head_input(pooled, self.center))

    def loss(self, g_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return preference_loss(g_hat, target, self.loss_name)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything fine-tuning sets: LoRA weights, item-token rows, head and its centre
        (detached, CPU)."""
        state = {
            name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad
        }
        return {**state, "center": self.center.detach().cpu().clone()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore ``trainable_state_dict()``; every trainable tensor must be present and match."""
        params = {**dict(self.named_parameters()), "center": self.center}
        expected = {name for name, p in params.items() if p.requires_grad} | {"center"}
        missing, extra = expected - state.keys(), state.keys() - expected
        if missing or extra:
            raise TslrecError(
                "fine-tuned weights do not fit this model (different LoRA settings, rendering "
                f"or K?): missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                if params[name].shape != value.shape:
                    raise TslrecError(
                        f"fine-tuned weight {name} has shape {tuple(value.shape)}, "
                        f"the model expects {tuple(params[name].shape)}"
                    )
                params[name].copy_(value.to(params[name].dtype))
