"""The whole TSLRec pipeline on small data and a tiny random Llama saved as a local HF directory."""

import json
from pathlib import Path

import pytest

from tslrec.config import load_config
from tslrec.pipeline.tslrec import results_markdown, run_tslrec


def test_run_compares_plain_and_enhanced_and_caches_every_stage(pipeline_config, monkeypatch):
    import tslrec.pipeline.tslrec as pipeline

    llm_builds = []  # the LLM is built only where stage 1 runs: none on a cache hit
    real_build = pipeline.build_preference_model
    monkeypatch.setattr(
        pipeline, "build_preference_model", lambda *a: llm_builds.append(1) or real_build(*a)
    )
    cfg = pipeline_config()
    results = run_tslrec(cfg, progress=False)
    assert len(llm_builds) == 1
    assert [r.backbone for r in results.rows] == ["sasrec", "gru4rec"]
    assert results.stages.sft.samples == 54  # one per user, less the 10% held out
    transmission = results.stages.transmission
    assert transmission.heldout.users == 6
    assert set(transmission.probes) == {"stage0_sasrec", "llm_before_sft", "stage2_hidden"}
    assert 0.0 <= transmission.head_one_item.top1 <= transmission.head_one_item.top5
    assert results.stages.embed.items == 20
    table = results_markdown(results)
    assert "| sasrec | TSLRec (adapter) |" in table and "change" in table
    sft = results.stages.sft
    against = f"{sft.epoch_losses[-1]:.3g}, against {sft.mean_target_loss:.3g} for the mean"
    assert against in table
    assert "Head on one-item prompts: top-1" in table and "Held-out users (6)" in table
    memory = results.stages.memory
    assert memory.peak_rss_mib >= memory.peak_growth_mib >= 0.0
    assert f"peak memory +{memory.peak_growth_mib:.0f} MiB" in table
    saved = json.loads((cfg.output_dir / "results.json").read_text())
    assert saved == results.to_json()
    assert saved["rows"][0]["enhanced"] == results.rows[0].enhanced

    # a rerun recomputes nothing: every stage comes from its cache
    again = run_tslrec(cfg, progress=False)
    metrics = lambda res: [(r.plain, r.enhanced) for r in res.rows]  # noqa: E731
    assert metrics(again) == metrics(results)
    assert len(llm_builds) == 1

    # changing K redoes stage 1 onwards, but not stage 0
    stage1_dirs = set((cfg.output_dir / "stage1").iterdir())
    changed = run_tslrec(pipeline_config(categories={"k": 3}), progress=False)
    assert changed.stages.categories_k == 3 and len(llm_builds) == 2
    assert len(set((cfg.output_dir / "stage1").iterdir()) - stage1_dirs) == 1
    assert changed.stage0 == results.stage0

    # a fusion adapter's other start is a model of its own, beside the others, on the same stages
    zero_cfg = pipeline_config(enhance={"mode": "fusion", "adapter_start": "zero"})
    zero = run_tslrec(zero_cfg, progress=False)
    assert len(llm_builds) == 2
    assert [r.plain for r in zero.rows] == [r.plain for r in results.rows]
    own = cfg.output_dir / "models" / f"sasrec-tslrec-fusion-zero-{results.stages.stage2_key}"
    assert (own / "results.json").is_file()
    assert "| sasrec | TSLRec (fusion-zero) |" in results_markdown(zero)

    # settings of one backbone retrain its plain and enhanced models, and nothing else
    own = {"gru4rec": {"train": {"lr": 0.03}, "model": {"hidden_size": 8}}}
    tuned = run_tslrec(pipeline_config(per_backbone=own), progress=False)
    assert tuned.stage0 == results.stage0
    assert len(llm_builds) == 2
    assert metrics(tuned)[0] == metrics(results)[0]  # SASRec's two models, from their caches
    gru4rec = [Path(tuned.rows[1].plain_dir), Path(tuned.rows[1].enhanced_dir)]
    trained = [load_config(d / "config.yaml") for d in gru4rec]
    assert [(c.train.lr, c.model.hidden_size) for c in trained] == [(0.03, 8), (0.03, 8)]
    assert load_config(cfg.output_dir / "models" / "sasrec" / "config.yaml").train.lr == 0.01

    # more patience for a stage 0 that ends on the same checkpoint keeps the LLM stages
    patient = run_tslrec(pipeline_config(train={"patience": 60}), progress=False)  # from 50
    assert load_config(cfg.output_dir / "models" / "sasrec" / "config.yaml").train.patience == 60
    assert patient.stages.stage2_key == results.stages.stage2_key
    assert len(llm_builds) == 2
    assert metrics(patient) == metrics(results)


@pytest.mark.parametrize(
    ("level", "samples", "builder"),
    [
        ("user", "window", "window_samples"),
        ("user", "history", "user_level_samples"),
        ("instance", "history", "instance_level_samples"),
    ],
)
def test_llm_stages_see_only_training_prefixes(
    pipeline_config, monkeypatch, level, samples, builder
):
    """Every sample builder gets training prefixes only, and held-out users never train."""
    import tslrec.llm.sft_samples as sft_samples
    from tslrec.pipeline.train import load_dataset

    calls = []
    real = getattr(sft_samples, builder)

    def spy(train_sequences, *args, **kwargs):
        calls.append([list(s) for s in train_sequences])
        return real(train_sequences, *args, **kwargs)

    monkeypatch.setattr(sft_samples, builder, spy)
    if builder != "user_level_samples":  # the held-out users' samples
        monkeypatch.setattr(sft_samples, "user_level_samples", spy)
    sft_settings = {"level": level, "samples": samples, "max_samples": 40, "epochs": 2}
    cfg = pipeline_config(enhance={"backbones": ["sasrec"]}, sft=sft_settings)
    run_tslrec(cfg, progress=False)
    dataset = load_dataset(cfg)
    assert len(calls) >= 2 and all(len(c) == dataset.num_users for c in calls)
    for call in calls:
        for user, sequence in enumerate(call):
            full = dataset.sequences[user].tolist()
            assert sequence in ([], full[:-2]), "prompts and targets use the training prefix only"
    shown = [{u for u, s in enumerate(c) if s} for c in calls]
    heldout, training = shown[0], set().union(*shown[1:])  # the held-out samples come first
    assert len(heldout) == 6 and not heldout & training and len(training) == 54


def test_the_public_api_is_the_listed_names_loaded_on_first_use():
    import tslrec

    assert sorted(tslrec.__all__) == sorted(tslrec._PUBLIC)
    assert all(callable(getattr(tslrec, name)) for name in tslrec.__all__)


def test_item_rows_start_from_the_stage0_table_when_asked(pipeline_config):
    import torch

    from tslrec.errors import TslrecError
    from tslrec.pipeline.train import load_dataset
    from tslrec.pipeline.tslrec import build_preference_model

    cfg = pipeline_config(sft={"item_rows": "stage0"})
    dataset = load_dataset(cfg)
    table = torch.randn(dataset.num_items, 8, generator=torch.Generator().manual_seed(0))
    table[1] = table[0]  # two items stage 0 cannot tell apart start as one row

    def item_rows(config, stage0_table):
        model, builder = build_preference_model(config, dataset, 4, stage0_table)
        ids = torch.tensor(builder.item_token_ids[1:])
        return model.llm.get_input_embeddings()(ids).detach()

    from_stage0 = item_rows(cfg, table)
    torch.testing.assert_close(from_stage0[0], from_stage0[1])
    random = item_rows(pipeline_config(), table)  # the default draw ignores the table
    assert not torch.allclose(random[0], random[1])
    with pytest.raises(TslrecError, match="needs stage 0's item table"):
        build_preference_model(cfg, dataset, 4)
