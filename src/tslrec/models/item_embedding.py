"""Item representations, shared by the input lookup and the output scoring (tied weights).

Every backbone asks its `ItemEmbedding` for the full (N+1, H) table once per forward pass and
uses it both to embed input sequences and to score all items. This is the seam through which
external (LLM-enhanced) item embeddings enter a model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tslrec.keys import content_key


def table_fingerprint(table: torch.Tensor) -> str:
    """A digest of a table's exact values: which external table a model or a stage was fed."""
    return content_key(table.detach().float().contiguous().numpy().tobytes())


class ItemEmbedding(nn.Module):
    """Produces the (N+1, H) item table; row 0 is the padding item and is always zero."""

    num_items: int
    hidden_size: int
    # the fingerprint of the external table it was built from (None for plain ids): the table as
    # given, not as standardised inside, whose last bits may vary with the CPU and thread count
    source: str | None = None

    def table(self) -> torch.Tensor:
        raise NotImplementedError


class IdEmbedding(ItemEmbedding):
    """A plain trainable embedding per item id, optionally initialised from a given matrix."""

    def __init__(self, num_items: int, hidden_size: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.num_items, self.hidden_size = num_items, hidden_size
        self.weight = nn.Parameter(torch.empty(num_items + 1, hidden_size))
        nn.init.normal_(self.weight, std=0.02)
        if init is not None:
            self.load_matrix(init)
        with torch.no_grad():
            self.weight[0].zero_()

    def load_matrix(self, matrix: torch.Tensor) -> None:
        """Copy an (N, H) matrix into rows 1..N: how `init` enhancement seeds a backbone."""
        if tuple(matrix.shape) != (self.num_items, self.hidden_size):
            raise ValueError(
                f"expected an item matrix of shape ({self.num_items}, {self.hidden_size}), "
                f"got {tuple(matrix.shape)}"
            )
        with torch.no_grad():
            self.weight[1:].copy_(matrix.to(self.weight.dtype))

    def table(self) -> torch.Tensor:
        return zero_padding_row(self.weight)


def zero_padding_row(table: torch.Tensor) -> torch.Tensor:
    """Row 0 times zero: the padding item stays zero without in-place edits to parameters."""
    mask = torch.ones_like(table[:, :1])
    mask[0] = 0
    return table * mask


class AdapterEmbedding(ItemEmbedding):
    """A frozen external table (N+1, D) mapped to the model's size by a trainable two-layer MLP."""

    def __init__(self, external: torch.Tensor, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_items, self.hidden_size = external.size(0) - 1, hidden_size
        self.register_buffer("external", _standardise(external))
        dim = external.size(1)
        self.adapter = nn.Sequential(
            nn.Linear(dim, 2 * hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * hidden_size, hidden_size),
        )

    def table(self) -> torch.Tensor:
        return zero_padding_row(self.adapter(self.external))


ADAPTER_STARTS = ("default", "zero", "small")


class FusionEmbedding(ItemEmbedding):
    """The adapted external table plus a fresh trainable id embedding.

    At PyTorch's `default` initialisation the adapter's output is about ten times the id
    embedding's scale, so a fused model starts far from a plain one. `zero` zeroes the
    adapter's last layer (the model starts as the plain one and the gradient decides how much
    of the LLM to use); `small` scales its weights by 0.1 and zeroes its bias.
    """

    def __init__(
        self, external: torch.Tensor, hidden_size: int, dropout: float = 0.0, start: str = "default"
    ) -> None:
        super().__init__()
        if start not in ADAPTER_STARTS:
            raise ValueError(f"unknown adapter start '{start}': expected one of {ADAPTER_STARTS}")
        self.num_items, self.hidden_size = external.size(0) - 1, hidden_size
        self.adapted = AdapterEmbedding(external, hidden_size, dropout)
        self.ids = IdEmbedding(self.num_items, hidden_size)
        last = self.adapted.adapter[-1]
        with torch.no_grad():  # draws no random numbers: every start shares the same stream
            if start == "zero":
                last.weight.zero_()
            elif start == "small":
                last.weight.mul_(0.1)
            if start != "default":
                last.bias.zero_()

    def table(self) -> torch.Tensor:
        return self.adapted.table() + self.ids.table()


def _standardise(external: torch.Tensor) -> torch.Tensor:
    """Centre and scale the real rows so the adapter starts in a well-conditioned regime."""
    rows = external[1:].float()
    rows = (rows - rows.mean(0)) / (rows.std(0) + 1e-6)
    return torch.cat([torch.zeros_like(rows[:1]), rows])


def pca_matrix(
    external: torch.Tensor, hidden_size: int, std: float = 0.02, seed: int = 0
) -> torch.Tensor:
    """PCA of the real rows of an (N+1, D) table to (N, hidden_size), rescaled to init scale `std`.

    Keeping the usual initialisation scale lets the backbone train with its normal learning rate;
    what the LLM contributes is the geometry (which items are close), not the magnitude. Columns
    are standardised first: LLM states carry a few huge "outlier" dimensions that would otherwise
    be all that PCA keeps.
    """
    from sklearn.decomposition import PCA

    rows = _standardise(external)[1:].double().numpy()
    reduced = PCA(n_components=hidden_size, random_state=seed).fit_transform(rows)
    reduced = reduced / reduced.std(ddof=1) * std
    return torch.from_numpy(reduced).float()


def build_item_embedding(
    mode: str,
    external: torch.Tensor,
    hidden_size: int,
    dropout: float = 0.0,
    adapter_start: str = "default",
) -> ItemEmbedding:
    """`init`, `adapter` or `fusion`: the three ways an enhanced table enters a backbone.

    `id` builds a plain embedding of the table's size (used when rebuilding from a checkpoint).
    `adapter_start` is the fusion adapter's starting scale (see `FusionEmbedding`).
    """
    if mode == "id":
        return IdEmbedding(external.size(0) - 1, hidden_size)
    if mode == "init":
        init = pca_matrix(external, hidden_size)
        embedding: ItemEmbedding = IdEmbedding(external.size(0) - 1, hidden_size, init=init)
    elif mode == "adapter":
        embedding = AdapterEmbedding(external, hidden_size, dropout)
    elif mode == "fusion":
        embedding = FusionEmbedding(external, hidden_size, dropout, adapter_start)
    else:
        raise ValueError(f"unknown enhancement mode '{mode}': expected init, adapter or fusion")
    embedding.source = table_fingerprint(external)
    return embedding


def enhanced_item_embedding(
    mode: str,
    external: torch.Tensor,
    hidden_size: int,
    dropout: float = 0.0,
    adapter_start: str = "default",
) -> tuple[ItemEmbedding, dict[str, Any]]:
    """`build_item_embedding`'s embedding and its spec, the `item_embedding` a checkpoint's
    meta records to rebuild it: `{mode, external_dim}`, and `adapter_start` where it is not the
    default (so models made before the option keep their meta)."""
    spec: dict[str, Any] = {"mode": mode, "external_dim": external.size(1)}
    if adapter_start != "default":
        spec["adapter_start"] = adapter_start
    embedding = build_item_embedding(mode, external, hidden_size, dropout, adapter_start)
    return embedding, spec
