"""Sample builders, no leakage, length batching, and fine-tuning: loss, resume, item-token rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tslrec.checkpointer import read_progress
from tslrec.config import PromptConfig, SFTConfig
from tslrec.errors import TslrecError
from tslrec.io import read_json
from tslrec.layout import SFT_CHECKPOINT
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.prompts import PromptBuilder
from tslrec.llm.sft import fine_tune
from tslrec.llm.sft_batches import length_batches, pad_batch
from tslrec.llm.sft_checkpoint import load_fine_tuned
from tslrec.llm.sft_samples import (
    Sample,
    count_instance_samples,
    instance_level_samples,
    mean_target_loss,
    subsample,
    user_level_samples,
)

K = 3
N = 12
# items 1..9 in categories i % 3; items 10..12 only ever appear as validation/test items
LABELS = np.array([-1] + [i % 3 for i in range(1, 10)] + [K - 1] * 3)
TRAIN = [[1, 4, 7, 2], [2, 5, 8], [3, 6, 9, 3, 6], [1, 2, 3], [4, 7]]


def _builder(tok, rendering: str = "id_token") -> PromptBuilder:
    return PromptBuilder(tok, PromptConfig(rendering=rendering, max_tokens=64), N)


def _model(tok_model, cfg: SFTConfig, rendering: str = "id_token"):
    llm, tok = tok_model
    builder = _builder(tok, rendering)
    torch.manual_seed(0)
    model = PreferenceModel(llm, K, cfg, builder.item_token_ids, builder.vocab_size)
    return model, builder


def _mean_loss(model: PreferenceModel, samples) -> float:
    model.eval()
    ids, mask = pad_batch([s.input_ids for s in samples])
    target = torch.from_numpy(np.stack([s.target for s in samples]))
    with torch.no_grad():
        return model.loss(model(ids, mask)[1], target).item()


def test_sample_counts(tiny_lm) -> None:
    builder = _builder(tiny_lm[1])
    users = user_level_samples(TRAIN, LABELS, K, builder)
    assert len(users) == len(TRAIN)
    instances = instance_level_samples(TRAIN, LABELS, K, builder)
    assert len(instances) == sum(len(s) - 1 for s in TRAIN) == count_instance_samples(TRAIN)
    capped = instance_level_samples(TRAIN, LABELS, K, builder, max_samples=5, seed=1)
    assert len(capped) == 5
    again = instance_level_samples(TRAIN, LABELS, K, builder, max_samples=5, seed=1)
    assert [(s.user, s.length) for s in capped] == [(s.user, s.length) for s in again]
    assert len(user_level_samples([*TRAIN, [], [0, 0]], LABELS, K, builder)) == len(TRAIN)


def test_sample_contents(tiny_lm) -> None:
    builder = _builder(tiny_lm[1])
    users = user_level_samples(TRAIN, LABELS, K, builder)
    assert users[0].input_ids == builder.build(TRAIN[0])
    np.testing.assert_allclose(users[0].target, [0.0, 0.75, 0.25])  # 1,4,7 -> 1; 2 -> 2
    instances = instance_level_samples(TRAIN, LABELS, K, builder)
    first = [s for s in instances if s.user == 2]
    assert [s.length for s in first] == [1, 2, 3, 4]
    for s in first:
        assert s.input_ids == builder.build(TRAIN[2][: s.length])
        next_item = TRAIN[2][s.length]
        assert s.target.tolist() == np.eye(K)[LABELS[next_item]].tolist()


def test_user_targets_are_category_frequencies_of_the_sequence(tiny_lm) -> None:
    """That the pipeline passes only training prefixes is test_pipeline.py's concern."""
    builder = _builder(tiny_lm[1])
    # category K-1 only holds items 2, 5, 8: each target's share is counted by hand
    for s in user_level_samples(TRAIN, LABELS, K, builder):
        expected = sum(LABELS[i] == K - 1 for i in TRAIN[s.user]) / len(TRAIN[s.user])
        assert s.target[K - 1] == pytest.approx(expected)


def test_length_batches_cover_everything_deterministically() -> None:
    lengths = [5, 3, 9, 3, 7, 5, 1, 8, 2, 6]
    a = length_batches(lengths, 3, seed=4)
    assert sorted(i for batch in a for i in batch) == list(range(10)) and a == length_batches(
        lengths, 3, seed=4
    )
    assert a != length_batches(lengths, 3, seed=5)
    for batch in a:  # batches hold neighbours in length order
        assert max(lengths[i] for i in batch) - min(lengths[i] for i in batch) <= 3
    assert len(subsample(list(range(10)), 4, 0)) == 4


def test_fine_tune_decreases_loss_and_trains_item_rows(tiny_lm, tmp_path) -> None:
    cfg = SFTConfig(epochs=15, batch_size=2, lr=1e-2, lora_dropout=0.0, head_init="zero")
    model, builder = _model(tiny_lm, cfg)
    samples = user_level_samples(TRAIN, LABELS, K, builder)
    embed = model.llm.get_input_embeddings()
    item_rows = torch.tensor(builder.item_token_ids[1:10])
    other_rows = torch.arange(0, 50)
    with torch.no_grad():
        before_items, before_other = embed(item_rows).clone(), embed(other_rows).clone()
    before = _mean_loss(model, samples)
    stats = fine_tune(model, samples, cfg, tmp_path / "sft")
    model.cpu()  # fine_tune leaves it on the accelerator's device (a GPU where there is one)
    after = _mean_loss(model, samples)
    assert after < 0.6 * before and stats.epoch_losses[-1] < 0.5 * stats.epoch_losses[0]
    assert stats.samples == 5 and stats.epochs == 15 and stats.steps == 15 * 3
    assert stats.epoch_losses[-1] < stats.mean_target_loss == mean_target_loss(samples, "mse")
    assert len(stats.epoch_losses) == 15 and len(stats.seconds_per_epoch) == 15
    with torch.no_grad():
        assert not torch.allclose(embed(item_rows), before_items)
        torch.testing.assert_close(embed(other_rows), before_other)
    assert read_json(tmp_path / "sft" / "sft_stats.json")["steps"] == 45


def test_resume_matches_uninterrupted_run(tiny_lm_factory, tmp_path) -> None:
    def run(epochs: int, out: str):
        cfg = SFTConfig(epochs=epochs, batch_size=2, grad_accum=2, lr=1e-2, lora_dropout=0.1)
        model, builder = _model(tiny_lm_factory(), cfg)
        samples = user_level_samples(TRAIN, LABELS, K, builder)
        stats = fine_tune(model, samples, cfg, tmp_path / out)
        return model.cpu(), stats

    straight, s_stats = run(2, "a")
    run(1, "b")  # "interrupted" after epoch 1
    resumed, r_stats = run(2, "b")
    assert r_stats.resumed_from_epoch == 1 and r_stats.epochs == 2
    assert r_stats.steps == s_stats.steps == 4  # 3 batches / epoch, accumulation 2
    np.testing.assert_allclose(r_stats.step_losses, s_stats.step_losses, rtol=1e-5)
    a, b = straight.trainable_state_dict(), resumed.trainable_state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)
    # the saved weights load into a fresh model
    fresh, _ = _model(tiny_lm_factory(), SFTConfig())
    assert load_fine_tuned(fresh, tmp_path / "b")["epoch"] == 2
    torch.testing.assert_close(fresh.head.weight, straight.head.weight, atol=1e-6, rtol=1e-5)


def test_a_run_stopped_within_an_epoch_resumes_from_its_last_step(
    tiny_lm_factory, tmp_path, monkeypatch
) -> None:
    """A long epoch checkpoints as it goes (here after every step): a run killed mid-epoch
    resumes at the next batch, with the random state dropout had, and ends as one that ran
    straight through."""
    import tslrec.llm.sft as sft

    cfg = SFTConfig(epochs=2, batch_size=1, grad_accum=2, lr=1e-2, lora_dropout=0.1)

    def run(out: str):
        model, builder = _model(tiny_lm_factory(), cfg)
        samples = user_level_samples(TRAIN, LABELS, K, builder)
        return model, fine_tune(model, samples, cfg, tmp_path / out)

    straight, s_stats = run("a")
    monkeypatch.setattr(sft, "CHECKPOINT_SECONDS", 0.0)
    real_step, steps = sft._WithinEpoch.after_step, []

    def killed_after_four_steps(self, losses, batches_done):
        real_step(self, losses, batches_done)
        steps.append(batches_done)
        if len(steps) == 4:  # 3 steps of epoch 1 (5 batches, accumulation 2), 1 of epoch 2
            raise KeyboardInterrupt

    monkeypatch.setattr(sft._WithinEpoch, "after_step", killed_after_four_steps)
    with pytest.raises(KeyboardInterrupt):
        run("b")
    state = read_progress(tmp_path / "b" / SFT_CHECKPOINT)
    assert state["epoch"] == 1 and state["partial"]["batches"] == 2
    monkeypatch.setattr(sft._WithinEpoch, "after_step", real_step)
    resumed, r_stats = run("b")
    assert r_stats.steps == s_stats.steps == 6
    np.testing.assert_allclose(r_stats.step_losses, s_stats.step_losses, rtol=1e-5)
    a, b = straight.trainable_state_dict(), resumed.trainable_state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)
    assert "partial" not in read_progress(tmp_path / "b" / SFT_CHECKPOINT)


def test_resume_refuses_other_settings(tiny_lm_factory, tmp_path) -> None:
    cfg = SFTConfig(epochs=1, batch_size=4)
    model, builder = _model(tiny_lm_factory(), cfg)
    samples = user_level_samples(TRAIN, LABELS, K, builder)
    fine_tune(model, samples, cfg, tmp_path)
    other = SFTConfig(epochs=2, batch_size=4, lr=1e-3)
    model, _ = _model(tiny_lm_factory(), other)
    with pytest.raises(TslrecError, match="different fine-tuning settings"):
        fine_tune(model, samples, other, tmp_path)
    with pytest.raises(TslrecError, match="different fine-tuning settings"):
        fine_tune(model, samples[:-1], cfg.model_copy(update={"epochs": 2}), tmp_path)
    fewer_layers = cfg.model_copy(update={"epochs": 2, "lora_layers": 1})  # other adapters
    model, _ = _model(tiny_lm_factory(), fewer_layers)
    with pytest.raises(TslrecError, match="different fine-tuning settings"):
        fine_tune(model, samples, fewer_layers, tmp_path)
    model, _ = _model(tiny_lm_factory(), cfg)
    assert fine_tune(model, samples, cfg, tmp_path).resumed_from_epoch == 1  # the same resumes
    with pytest.raises(TslrecError):
        fine_tune(model, [], other, tmp_path / "empty")
    with pytest.raises(TslrecError):
        load_fine_tuned(model, tmp_path / "missing")


def test_the_mean_target_loss_is_what_ignoring_the_prompt_costs() -> None:
    samples = [Sample([1], np.array(t, dtype=np.float32), 0, 1) for t in ([1, 0], [0, 1])]
    assert mean_target_loss(samples, "mse") == pytest.approx(0.25)  # (0.5^2 + 0.5^2) / 2
    # KL(g || 1/2, 1/2) for a one-hot g is log 2, the same for both samples
    assert mean_target_loss(samples, "kl") == pytest.approx(math.log(2))


def test_windows_show_what_their_targets_count_and_only_training_items(tiny_lm) -> None:
    from tslrec.llm.sft_samples import holdout_users, window_samples

    builder = PromptBuilder(tiny_lm[1], PromptConfig(rendering="id_token", max_items=3), N)
    seen_lengths = set()
    for seed in range(40):
        samples = window_samples(TRAIN, LABELS, K, builder, seed)
        assert [s.user for s in samples] == list(range(len(TRAIN)))  # one per user
        for s in samples:
            items = TRAIN[s.user]
            starts = [
                i
                for i in range(len(items))
                if s.input_ids == builder.build(items[i : i + s.length])
            ]
            assert starts, "the window is consecutive training items"
            window = items[starts[0] : starts[0] + s.length]
            assert all(i <= 9 for i in window)  # items 10..12 are validation/test only
            expected = np.bincount(LABELS[window], minlength=K) / len(window)
            np.testing.assert_allclose(s.target, expected)
            if s.length == 1:  # a one-item window is what stage 2 asks: its item's one-hot
                assert s.target.tolist() == np.eye(K)[LABELS[window[0]]].tolist()
            seen_lengths.add(s.length)
    assert seen_lengths == {1, 2, 3}  # 1..prompt.max_items
    a = window_samples(TRAIN, LABELS, K, builder, 7)
    b = window_samples(TRAIN, LABELS, K, builder, 7)
    assert [x.input_ids for x in a] == [x.input_ids for x in b]
    users, held = holdout_users([*TRAIN, []], 0.4, seed=3)
    assert len(held) == 2 and not set(users) & set(held) and set(users) | set(held) == set(range(5))
    assert holdout_users(TRAIN, 0.4, seed=3) == (users, held)


def test_learning_rate_warms_up_then_decays() -> None:
    from tslrec.llm.sft import learning_rate

    cfg = SFTConfig(lr=1.0, warmup=0.2, schedule="cosine")
    rates = [learning_rate(cfg, step, 10) for step in range(10)]
    assert rates[:2] == [0.5, 1.0]  # two warm-up steps: 1/2, 2/2
    assert rates[2] == 1.0 and rates[6] == pytest.approx(0.5)  # half way through the decay
    assert all(a > b for a, b in itertools.pairwise(rates[2:]))
    assert learning_rate(SFTConfig(lr=0.1), 5, 10) == 0.1


def test_a_random_head_passes_a_gradient_to_the_adapters_on_the_first_step(tiny_lm_factory):
    grads = {}
    for init in ("zero", "random"):
        model, builder = _model(tiny_lm_factory(), SFTConfig(head_init=init))
        samples = user_level_samples(TRAIN, LABELS, K, builder)
        ids, mask = pad_batch([s.input_ids for s in samples])
        target = torch.from_numpy(np.stack([s.target for s in samples]))
        model.loss(model(ids, mask)[1], target).backward()
        lora_b = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # A: B = 0
        grads[init] = sum(float(g.abs().sum()) for g in lora_b if g is not None)
    assert grads["zero"] == 0.0 < grads["random"]


def test_fine_tuning_without_a_directory_writes_nothing_and_learns_the_same(
    tiny_lm_factory, tmp_path, monkeypatch
) -> None:
    def run(out):
        cfg = SFTConfig(epochs=2, batch_size=2, lr=1e-2, lora_dropout=0.1)
        model, builder = _model(tiny_lm_factory(), cfg)
        samples = user_level_samples(TRAIN, LABELS, K, builder)
        return model.cpu(), fine_tune(model, samples, cfg, out)

    on_disk, disk_stats = run(tmp_path / "sft")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    in_memory, memory_stats = run(None)
    model = in_memory.cpu()
    assert not any((tmp_path / "empty").iterdir())
    assert memory_stats.steps == disk_stats.steps == 6
    np.testing.assert_allclose(memory_stats.step_losses, disk_stats.step_losses, rtol=1e-6)
    a, b = on_disk.trainable_state_dict(), model.trainable_state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name])
