"""The one checkpointer: tensors, optimizer, RNG and progress round-trip; a foreign key is
refused by name; a save killed half-way leaves the previous checkpoint as it was."""

from __future__ import annotations

import os

import pytest
import torch

import tslrec.checkpointer as checkpointer
from tslrec import layout
from tslrec.checkpointer import (
    Checkpoint,
    StaleCheckpoint,
    discard_checkpoint,
    load_checkpoint,
    load_group,
    read_progress,
    save_checkpoint,
    set_rng_state,
)
from tslrec.errors import TslrecError

KEY = {"settings": {"lr": 0.1, "betas": (0.9, 0.99)}, "data": "abc"}


def _trained(seed: int = 0) -> tuple[torch.nn.Linear, torch.optim.Adam]:
    """A model and an Adam that has taken two steps: moments and a step count to restore."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        optimizer.step()
    return model, optimizer


def _save(path, model, optimizer, progress, rng=False) -> None:
    tensors = {"model": model.state_dict()}
    save_checkpoint(path, KEY, progress, tensors, optimizer=optimizer, rng=rng)


def test_tensors_optimizer_rng_and_progress_round_trip(tmp_path) -> None:
    model, optimizer = _trained()
    progress = {"epoch": 3, "losses": [0.5, 0.25]}
    _save(tmp_path / "ck", model, optimizer, progress, rng=True)
    expected_draw = torch.rand(5)  # what follows the saved random state

    fresh, fresh_optimizer = _trained(seed=1)  # other weights, other moments
    saved = load_checkpoint(tmp_path / "ck", KEY, optimizer=fresh_optimizer)
    assert isinstance(saved, Checkpoint) and saved.progress == progress
    fresh.load_state_dict(saved.tensors["model"])
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value)
    restored, original = fresh_optimizer.state_dict(), optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]  # betas a tuple again
    for index, values in original["state"].items():
        for name, value in values.items():
            assert torch.equal(torch.as_tensor(restored["state"][index][name]), value)
    set_rng_state(saved.rng)
    assert torch.equal(torch.rand(5), expected_draw)
    assert read_progress(tmp_path / "ck") == progress
    assert torch.equal(load_group(tmp_path / "ck", "model")["weight"], model.weight)


def test_nothing_saved_reads_as_none_and_no_rng_unless_asked(tmp_path) -> None:
    assert load_checkpoint(tmp_path / "none", KEY) is None
    assert read_progress(tmp_path / "none") is None and load_group(tmp_path / "none", "m") is None
    save_checkpoint(tmp_path / "ck", KEY, {"done": 1}, {"table": {"t": torch.ones(2)}})
    saved = load_checkpoint(tmp_path / "ck", KEY)
    assert saved.rng is None and torch.equal(saved.tensors["table"]["t"], torch.ones(2))
    discard_checkpoint(tmp_path / "ck")
    assert not (tmp_path / "ck").exists() and load_checkpoint(tmp_path / "ck", KEY) is None


def test_a_checkpoint_under_another_key_is_refused_by_its_path(tmp_path) -> None:
    model, optimizer = _trained()
    _save(tmp_path / "ck", model, optimizer, {"epoch": 1})
    other = {**KEY, "data": "abd"}
    with pytest.raises(StaleCheckpoint, match="a state of other data") as err:
        load_checkpoint(tmp_path / "ck", other, what="a state of other data")
    assert isinstance(err.value, TslrecError) and str(tmp_path / "ck") in str(err.value)
    assert err.value.path == tmp_path / "ck"


def test_a_killed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch) -> None:
    model, optimizer = _trained()
    _save(tmp_path / "ck", model, optimizer, {"epoch": 1})
    before = os.listdir(tmp_path)
    real = checkpointer.save_tensors

    def killed_at_the_optimizer(path, tensors, metadata=None):
        if path.name == layout.CHECKPOINT_OPTIMIZER:
            raise KeyboardInterrupt  # the weights of the new state are already written
        real(path, tensors, metadata)

    monkeypatch.setattr(checkpointer, "save_tensors", killed_at_the_optimizer)
    newer, newer_optimizer = _trained(seed=1)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path / "ck", newer, newer_optimizer, {"epoch": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == before  # no temporary directory left behind
    saved = load_checkpoint(tmp_path / "ck", KEY, optimizer=_trained(seed=2)[1])
    assert saved.progress == {"epoch": 1}
    assert torch.equal(saved.tensors["model"]["weight"], model.weight)


def test_a_group_may_not_take_the_optimizer_file(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"optimizer\.safetensors"):
        save_checkpoint(tmp_path / "ck", KEY, {}, {"optimizer": {"t": torch.ones(1)}})
