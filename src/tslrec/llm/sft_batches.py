"""Stage 1's batching: padded token ids, and batches of similar-length samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tslrec.llm.sft_samples import Sample


class SampleDataset(Dataset):
    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest one: ``(input_ids, attention_mask)``.

    The pad id is irrelevant (padded positions are masked and never pooled).
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def collate(batch: list[Sample]) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch([s.input_ids for s in batch])
    target = torch.from_numpy(np.stack([s.target for s in batch]))
    return {"input_ids": ids, "attention_mask": mask, "target": target}


def length_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar-length samples (little padding), in a seeded random order.

    Samples are shuffled, stably sorted by length (so ties vary with the seed), cut into
    consecutive batches, and the batch order is shuffled again.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]
