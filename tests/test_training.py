import json

import numpy as np
import polars as pl
import pytest
import torch
from synthetic import cyclic_sequences, tiny_config, write_interactions_csv

from tslrec.evaluation.evaluator import evaluate
from tslrec.models import build_model
from tslrec.pipeline.train import load_dataset, train_and_evaluate
from tslrec.records import ModelRecord
from tslrec.training.checkpoint import load_model
from tslrec.training.trainer import epochs_done, fit, mean_training_loss, replay_patience


def fit_new_model(ds, cfg, train_cfg, out):
    """Fit a freshly built model of `cfg.model` into `out`, without a progress bar."""
    return fit(build_model(ds.num_items, cfg.model), ds, train_cfg, cfg.eval, out, progress=False)


@pytest.fixture()
def cyclic(tmp_path):
    csv = write_interactions_csv(tmp_path / "c.csv", cyclic_sequences())
    return tmp_path, csv


@pytest.mark.parametrize(
    "name,loss", [("sasrec", "ce"), ("gru4rec", "bce"), ("bert4rec", "sampled_softmax")]
)
def test_backbones_learn_a_predictable_sequence(cyclic, name, loss):
    tmp_path, csv = cyclic
    # the cloze objective sees a fifth of the targets per epoch: at 30 epochs its HR@5 fell
    # between 0.62 and 1.0 over seeds 0-4, at 60 it is 1.0 for each
    epochs = 60 if name == "bert4rec" else 30
    cfg = tiny_config(
        tmp_path,
        csv,
        model={"name": name},
        train={"epochs": epochs, "loss": loss, "num_negatives": 8},
    )
    record = train_and_evaluate(cfg, load_dataset(cfg), progress=False)
    # 20 items and a fully determined next item: chance HR@5 is 0.25
    assert record.test["HR@5"] > 0.8, record.test


def test_training_is_deterministic_and_resumes_to_the_same_result(cyclic):
    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 4})
    ds = load_dataset(cfg)

    def run(out, epochs):
        torch.manual_seed(0)
        model = build_model(ds.num_items, cfg.model)
        train_cfg = cfg.train.model_copy(update={"epochs": epochs})
        return model, fit(model, ds, train_cfg, cfg.eval, out, progress=False)

    _, full = run(tmp_path / "a", 4)
    _, again = run(tmp_path / "b", 4)
    run(tmp_path / "c", 2)  # "interrupted" after 2 epochs
    # ... even in the instant its last state write had moved the old state aside
    (tmp_path / "c" / "state").rename(tmp_path / "c" / ".state.previous")
    assert epochs_done(tmp_path / "c") == 2
    _, resumed = run(tmp_path / "c", 4)
    losses = lambda r: [h.loss for h in r.history]  # noqa: E731
    assert losses(full) == losses(again)
    assert losses(resumed) == pytest.approx(losses(full), rel=1e-6)
    assert json.loads((tmp_path / "c" / "history.json").read_text())[-1]["epoch"] == 4


def test_training_without_a_directory_writes_nothing_and_learns_the_same(cyclic, monkeypatch):
    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 4})
    ds = load_dataset(cfg)
    models = []
    for out in (tmp_path / "on-disk", None):
        torch.manual_seed(0)
        models.append(build_model(ds.num_items, cfg.model))
        if out is None:
            (tmp_path / "empty").mkdir()
            monkeypatch.chdir(tmp_path / "empty")
        result = fit(models[-1], ds, cfg.train, cfg.eval, out, progress=False)
    assert result.checkpoint is None and not any((tmp_path / "empty").iterdir())
    on_disk = json.loads((tmp_path / "on-disk" / "history.json").read_text())
    assert [h.loss for h in result.history] == [h["loss"] for h in on_disk]
    trained = [model.state_dict() for model in models]
    assert all(torch.equal(trained[0][name], trained[1][name]) for name in trained[0])


def test_best_checkpoint_round_trips(cyclic):
    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv)
    ds = load_dataset(cfg)
    record = train_and_evaluate(cfg, ds, progress=False)
    model, meta = load_model(cfg.output_dir / "models" / "sasrec" / "best")
    assert meta["num_items"] == ds.num_items
    assert evaluate(model, ds, "test", cfg.eval).metrics["NDCG@10"] == pytest.approx(
        record.test["NDCG@10"]
    )


def test_resuming_under_other_settings_is_refused(cyclic):
    from tslrec.errors import TslrecError

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 1})
    ds = load_dataset(cfg)
    fit_new_model(ds, cfg, cfg.train, tmp_path / "r")
    other = cfg.train.model_copy(update={"lr": 0.5, "epochs": 2})
    with pytest.raises(TslrecError, match="other settings"):
        fit_new_model(ds, cfg, other, tmp_path / "r")


def test_resuming_on_another_frozen_item_table_is_refused(cyclic):
    from tslrec.errors import TslrecError
    from tslrec.models.item_embedding import build_item_embedding

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 1})
    ds = load_dataset(cfg)

    def fit_on(table, train_cfg):
        embedding = build_item_embedding("adapter", table, cfg.model.hidden_size)
        model = build_model(ds.num_items, cfg.model, embedding)
        return fit(model, ds, train_cfg, cfg.eval, tmp_path / "r", progress=False)

    table = torch.randn(ds.num_items + 1, 12, generator=torch.Generator().manual_seed(0))
    fit_on(table, cfg.train)
    longer = cfg.train.model_copy(update={"epochs": 2})
    with pytest.raises(TslrecError, match="other settings"):
        fit_on(table.flip(0), longer)  # same shape, other content
    assert fit_on(table, longer).epochs_run == 2  # the same table resumes


def test_a_stage_after_another_gets_its_own_mixed_precision(cyclic):
    """`tslrec run` fine-tunes the LLM (full precision) then trains backbones (bf16) in one
    process; accelerate's process-wide state used to refuse the second setting."""
    from accelerate.state import AcceleratorState

    from tslrec.training.accelerator import stage_accelerator

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 1, "mixed_precision": "bf16"})
    ds = load_dataset(cfg)
    stage_accelerator(gradient_accumulation_steps=2)  # an earlier stage, as the SFT sets it up
    fit_new_model(ds, cfg, cfg.train, tmp_path / "m")
    assert AcceleratorState().mixed_precision == "bf16"
    # and the other way round: the SFT after a bf16 stage 0 is not silently autocast
    assert stage_accelerator(gradient_accumulation_steps=2).state.mixed_precision == "no"


def test_a_run_given_more_epochs_continues_where_it_stopped(cyclic):
    tmp_path, csv = cyclic

    def run(out: str, epochs: int) -> dict:
        cfg = tiny_config(tmp_path / out, csv, train={"epochs": epochs})
        record = train_and_evaluate(cfg, load_dataset(cfg), progress=False)
        history = json.loads((cfg.output_dir / "models" / "sasrec" / "history.json").read_text())
        return {**record.to_json(), "losses": [h["loss"] for h in history], "history": history}

    straight = run("straight", 4)
    first = run("extended", 2)
    extended = run("extended", 4)
    assert extended["history"][:2] == first["history"]  # kept, timings included: not retrained
    assert extended["losses"] == pytest.approx(straight["losses"], rel=1e-6)
    assert extended["test"]["NDCG@10"] == pytest.approx(straight["test"]["NDCG@10"])
    # fewer epochs than were already run cannot be continued: trained again from scratch
    shorter = run("extended", 3)
    assert shorter["epochs_run"] == 3
    assert shorter["history"][:2] != first["history"]
    (kept,) = (tmp_path / "extended" / "run" / "models").glob("sasrec.replaced-*")
    assert json.loads((kept / "history.json").read_text()) == extended["history"]  # not lost
    assert shorter["losses"] == pytest.approx(straight["losses"][:3], rel=1e-6)


def test_a_run_given_more_patience_continues_where_it_stopped(cyclic):
    tmp_path, csv = cyclic

    def run(out: str, patience: int) -> dict:
        cfg = tiny_config(tmp_path / out, csv, train={"epochs": 40, "patience": patience})
        record = train_and_evaluate(cfg, load_dataset(cfg), progress=False)
        history = json.loads((cfg.output_dir / "models" / "sasrec" / "history.json").read_text())
        return {**record.to_json(), "history": history}

    straight = run("straight", 4)
    first = run("extended", 1)
    assert first["epochs_run"] < straight["epochs_run"] < 40  # both stopped early
    extended = run("extended", 4)
    assert extended["history"][: first["epochs_run"]] == first["history"]  # not retrained
    losses = lambda r: [h["loss"] for h in r["history"]]  # noqa: E731
    assert losses(extended) == pytest.approx(losses(straight), rel=1e-6)
    assert extended["test"]["NDCG@10"] == pytest.approx(straight["test"]["NDCG@10"])
    # less patience than was used cannot be continued: trained again from scratch
    again = run("extended", 1)
    assert again["epochs_run"] == first["epochs_run"]
    assert again["history"] != first["history"]  # its timings: trained anew


def test_a_shorter_patience_replayed_from_a_history_is_what_training_under_it_gives(cyclic):
    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"epochs": 40})
    ds = load_dataset(cfg)

    def run(patience: int):
        torch.manual_seed(0)
        train_cfg = cfg.train.model_copy(update={"patience": patience})
        return fit_new_model(ds, cfg, train_cfg, None)

    patient, hasty = run(6), run(1)
    assert hasty.epochs_run < patient.epochs_run < 40  # both stopped early, at different epochs
    replayed = replay_patience(patient.history, 1)
    assert (replayed.epoch, replayed.best_epoch) == (hasty.epochs_run, hasty.best_epoch)
    assert replayed.best_metric == hasty.best_valid
    assert replay_patience(patient.history, 6).epoch == patient.epochs_run


def test_an_interrupted_continuation_leaves_no_stale_record(cyclic, monkeypatch):
    import tslrec.pipeline.train as train

    tmp_path, csv = cyclic
    short = tiny_config(tmp_path, csv, train={"epochs": 2})
    longer = tiny_config(tmp_path, csv, train={"epochs": 4})
    model_dir = short.output_dir / "models" / "sasrec"
    train_and_evaluate(short, load_dataset(short), progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "evaluate", interrupted)  # dies after 4 epochs, before the test
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(longer, load_dataset(longer), progress=False)
    monkeypatch.undo()
    # best/ now holds the 4-epoch model: the 2-epoch record must not be served for it
    assert not (model_dir / "results.json").exists()
    again = train_and_evaluate(short, load_dataset(short), progress=False)
    assert again.epochs_run == 2
    assert len(json.loads((model_dir / "history.json").read_text())) == 2


def test_mean_training_loss_is_the_cross_entropy_of_every_training_target(cyclic):
    """One batch holds every window, so the mean loss is plain cross-entropy, computed by hand."""
    from tslrec.training.batches import causal_windows

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv, train={"batch_size": 10_000})
    ds = load_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(ds.num_items, cfg.model.model_copy(update={"dropout": 0.3})).train()
    inputs, targets = (torch.from_numpy(a) for a in causal_windows(ds.train_sequences(), 10))

    def cross_entropy(rows: slice) -> float:
        with torch.no_grad():
            hidden, table = model.eval()(inputs[rows])
        real = targets[rows] != 0  # scored over the real items 1..N: padding is no candidate
        logits = hidden[real] @ table[1:].T
        return float(torch.nn.functional.cross_entropy(logits, targets[rows][real] - 1))

    expected = cross_entropy(slice(None))
    assert mean_training_loss(model.train(), ds, cfg.train) == pytest.approx(expected)
    assert model.training  # left as it was found
    # in batches of 16 windows, taken in order: the mean of the batch means, as an epoch logs
    batches = [slice(i, i + 16) for i in range(0, len(inputs), 16)]
    in_batches = sum(map(cross_entropy, batches)) / len(batches)
    small = cfg.train.model_copy(update={"batch_size": 16})
    assert mean_training_loss(model, ds, small) == pytest.approx(in_batches)
    assert in_batches != pytest.approx(expected)
    state = torch.random.get_rng_state()
    with_dropout = mean_training_loss(model, ds, cfg.train, dropout=True)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream untouched
    assert with_dropout == mean_training_loss(model, ds, cfg.train, dropout=True)  # seeded
    assert with_dropout != pytest.approx(expected)


def test_other_cutoffs_rescore_a_finished_run_without_training_it_again(cyclic):
    from tslrec.evaluation.metrics import metrics_from_ranks

    tmp_path, csv = cyclic

    def run(ks: list[int], epochs: int = 2) -> tuple[ModelRecord, list[dict]]:
        cfg = tiny_config(tmp_path, csv, train={"epochs": epochs}, eval={"ks": ks})
        record = train_and_evaluate(cfg, load_dataset(cfg), progress=False)
        return record, json.loads((tmp_path / "run/models/sasrec/history.json").read_text())

    first, history = run([5, 10, 20])
    rescored, same_history = run([1, 10, 50])
    assert same_history == history  # timings included: not one epoch trained again
    for view in ("", "sampled_"):  # no item of this data has fewer than 4 interactions
        cutoffs = {n.removeprefix(view) for n in rescored.test if n.startswith(view + "HR@")}
        assert cutoffs == {f"HR@{k}" for k in (1, 10, 50)}, view
    assert rescored.test["NDCG@10"] == first.test["NDCG@10"]
    ranks = pl.read_parquet(tmp_path / "run/models/sasrec/test_per_user.parquet")["rank"]
    assert rescored.test["HR@1"] == metrics_from_ranks(ranks.to_numpy(), [1])["HR@1"]
    assert run([1, 10, 50])[0] == rescored  # found as it is now
    # the run, rescored, still continues when given more epochs instead of starting over
    longer, longer_history = run([1, 10, 50], epochs=3)
    assert longer.epochs_run == 3 and longer_history[:2] == history
    assert not list((tmp_path / "run/models").glob("sasrec.replaced-*"))


def test_another_tail_rule_rescores_the_tail_from_the_saved_ranks(cyclic):
    """`eval.tail_below` only says which test targets count as tail: no retraining, and the
    tail figures are those of the users whose target has fewer training interactions."""
    from tslrec.evaluation.metrics import metrics_from_ranks

    tmp_path, csv = cyclic

    def run(tail_below: int) -> tuple[ModelRecord, list[dict]]:
        cfg = tiny_config(tmp_path, csv, train={"epochs": 2}, eval={"tail_below": tail_below})
        record = train_and_evaluate(cfg, load_dataset(cfg), progress=False)
        return record, json.loads((tmp_path / "run/models/sasrec/history.json").read_text())

    cfg = tiny_config(tmp_path, csv)
    counts = load_dataset(cfg).item_counts
    first, history = run(1)
    assert first.test["tail_users"] == 0 and "tail_NDCG@10" not in first.test
    rule = int(np.median(counts[1:])) + 1  # about half of the items are tail
    rescored, same_history = run(rule)
    assert same_history == history
    per_user = pl.read_parquet(tmp_path / "run/models/sasrec/test_per_user.parquet")
    tail = counts[per_user["target"].to_numpy()] < rule
    assert per_user["tail"].to_list() == tail.tolist()  # the saved ranks follow the new rule
    assert 0 < rescored.test["tail_users"] == tail.sum() < len(tail)
    expected = metrics_from_ranks(per_user["rank"].to_numpy()[tail], [10])["NDCG@10"]
    assert rescored.test["tail_NDCG@10"] == pytest.approx(expected)
    assert rescored.test["NDCG@10"] == first.test["NDCG@10"]


def test_the_learning_rate_warms_up_then_decays_by_hand():
    from tslrec.training.schedule import learning_rate

    # 8 steps, a quarter of them warm-up: 0.5, 1, then cosine from 1 down towards 0
    rates = [learning_rate(1.0, 0.25, "cosine", step, 8) for step in range(8)]
    assert rates[:3] == [0.5, 1.0, 1.0]
    assert rates[5] == pytest.approx(0.5)  # half-way through the 6 decaying steps
    assert rates[7] == pytest.approx(0.5 * (1 - np.cos(np.pi / 6)))
    assert [learning_rate(0.1, 0.0, "constant", s, 8) for s in range(8)] == [0.1] * 8


def test_training_steps_follow_the_schedule_over_the_whole_budget(cyclic, monkeypatch):
    from tslrec.training.schedule import learning_rate

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv)
    train_cfg = cfg.train.model_copy(
        update={"epochs": 3, "patience": 5, "schedule": "cosine", "warmup": 0.2, "lr": 0.01}
    )
    ds = load_dataset(cfg)
    used: list[float] = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(
        torch.optim.Adam,
        "step",
        lambda self, *a: used.append(self.param_groups[0]["lr"]) or step(self, *a),
    )
    fit_new_model(ds, cfg, train_cfg, None)
    assert len(used) % 3 == 0 and len(used) >= 6  # every epoch has the same number of steps
    assert used == [learning_rate(0.01, 0.2, "cosine", s, len(used)) for s in range(len(used))]


def test_a_decaying_schedule_resumes_only_on_its_own_budget(cyclic):
    from tslrec.errors import TslrecError

    tmp_path, csv = cyclic
    cfg = tiny_config(tmp_path, csv)
    cosine = cfg.train.model_copy(update={"epochs": 1, "schedule": "cosine"})
    ds = load_dataset(cfg)
    fit_new_model(ds, cfg, cosine, tmp_path / "r")
    # the curve is drawn over `epochs`: a longer budget is another curve, not a continuation
    with pytest.raises(TslrecError, match="other settings"):
        fit_new_model(ds, cfg, cosine.model_copy(update={"epochs": 2}), tmp_path / "r")


def test_the_pipeline_retrains_a_decaying_schedule_given_more_epochs(cyclic):
    tmp_path, csv = cyclic
    cosine = {"epochs": 1, "schedule": "cosine", "warmup": 0.1}
    cfg = tiny_config(tmp_path, csv, train=cosine)
    ds = load_dataset(cfg)
    assert train_and_evaluate(cfg, ds, progress=False).epochs_run == 1
    longer = tiny_config(tmp_path, csv, train={**cosine, "epochs": 2})
    # another curve: trained again from its first epoch, not refused and not continued
    assert train_and_evaluate(longer, ds, progress=False).epochs_run == 2
