"""How long the demo takes, stage by stage, and how soon the plain backbones reach their best epoch.

    python benchmarks/speed.py --config configs/ml-100k.yaml
    python benchmarks/speed.py --config configs/ml-100k.yaml --no-demo --backbones sasrec

The demo part (`--no-demo` skips it) runs `tslrec run --config CONFIG` as `make demo` does, in a
fresh output directory (`--run-dir`, by default runs/speed-<time>, kept afterwards for
inspection; an existing non-empty one is refused, so that no stage comes from a cache). Only
the LLM's converted weights under `llm.cache_dir` (cache/llm/) are reused, as by any `make
demo` after the first; the JSON says whether they were there. It times the whole command and
reads each stage's seconds from the run's own records: results.json's wall times, stage 0's
and every downstream model's results.json, stages.json beside stage 2's table and the SFT's
sft_stats.json; what no record covers (interpreter start, imports, printing) is the whole
command's time less the stages'.
The backbones part (`--no-backbones` skips it) trains each plain backbone in memory on the same
config once per seed and records its best epoch, its seconds to that epoch (as the trainer
records them: each epoch's training and validation, up to the best), its total seconds and its valid
and test NDCG@10. `--baseline` takes an earlier speed JSON, measured before a speed-up on the
same machine, as the reference for the backbones' seconds to best.
Figures are set against issue #19's reference figures: the ratio is reference / measured (above
1: faster than the reference) and each target says whether it is met. `--set` applies to both
parts, so a run with overrides is a smoke run, not a measurement of the demo.
Writes benchmarks/results/speed-<dataset>[-demo|-backbones][-<overrides>].json and prints it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import arguments, machine, publish, result_name

from tslrec.config import BACKBONE_NAMES, Config, load_config
from tslrec.io import read_json
from tslrec.layout import (
    MODELS,
    RESULTS,
    STAGE0_BACKBONE,
)
from tslrec.pipeline.train import load_dataset
from tslrec.provenance import git_commit
from tslrec.recommender import Recommender
from tslrec.records import ModelRecord, RunResults

# Issue #19's reference figures: a fresh clone on a 2-core AMD EPYC, configs/ml-100k.yaml.
REFERENCE_DEMO_SECONDS = 792.0  # `make demo` after set-up: 13 min 12 s
REFERENCE_STAGE0_SECONDS = 155.0  # stage 0's SASRec (seed 42), its epochs' seconds
REFERENCE_STAGE0_BEST_EPOCH, REFERENCE_STAGE0_EPOCHS = 67, 77
REFERENCE_STAGE0_SECONDS_TO_BEST = 134.0
REFERENCE_SFT_SECONDS = 226.0  # stage 1's fine-tuning (sft_stats.json's seconds)
REFERENCE_STAGE2_SECONDS = 15.0  # stage 2's item embeddings
REFERENCE_DOWNSTREAM_SECONDS = 374.0  # the five downstream trainings (plain SASRec is stage 0's)
# Issue #19's targets.
TARGET_DEMO_SECONDS = 480.0  # `make demo` in at most 8 minutes
# plain SASRec over seeds 42, 43 and 44 (means): seconds to its best validation epoch, at
# no lower a test NDCG@10
TARGET_SASREC_SECONDS_TO_BEST = 27.0
TARGET_SASREC_TEST_NDCG = 0.0586
TARGET_SEEDS = [42, 43, 44]
# their seconds to best halved: against --baseline, as no figure of theirs came with the above
HALVED = ("gru4rec", "bert4rec")
METRIC = "NDCG@10"


def _tslrec_command() -> list[str]:
    """The `tslrec` command of this interpreter, as `make demo` calls it."""
    script = Path(sys.executable).with_name("tslrec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tslrec.cli"]


def _run_demo(args, run_dir: Path) -> tuple[float, Path, list[str]]:
    """`tslrec run` on the config in `run_dir`: its wall seconds, the log of its output and the
    command."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise SystemExit(f"{run_dir}: not empty; the demo is timed cold, in a fresh directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "speed-demo.log"
    overrides = [part for o in [*args.set, f"output_dir={run_dir}"] for part in ("--set", o)]
    command = [*_tslrec_command(), "run", "--config", str(args.config), *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # as the Makefile exports it
    print(f"timing `{shlex.join(command)}`; its output goes to {log}", file=sys.stderr)
    with log.open("w") as out:
        start = time.perf_counter()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        seconds = time.perf_counter() - start
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise SystemExit("\n".join([f"`{' '.join(command)}` failed; the end of {log}:", *tail]))
    return seconds, log, command


def _model(directory: Path) -> dict:
    """A trained model's epochs, seconds and NDCG@10, as its results.json records them."""
    record = ModelRecord.load(directory / RESULTS)
    return {
        "dir": directory.name,
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        "seconds": record.seconds,
        "seconds_to_best": record.seconds_to_best,
        "seconds_per_epoch": record.seconds_per_epoch,
        f"best_valid_{METRIC}": record.best_valid_ndcg,
        f"test_{METRIC}": record.test[METRIC],
    }


def _demo_figures(args, run_dir: Path, cfg: Config) -> dict:
    """Time `tslrec run` cold, and each stage from what the run recorded."""
    llm_cache = Path(cfg.llm.cache_dir) / cfg.llm.model
    cache_before = llm_cache.is_dir()
    seconds, log, command = _run_demo(args, run_dir)
    results = RunResults.load(run_dir / RESULTS)
    walls = results.wall_seconds_this_run  # data, stage0_sasrec, stage1_2_llm, downstream
    stages, sft = results.stages, results.stages.sft
    stage0_dir = run_dir / MODELS / STAGE0_BACKBONE
    stage0 = _model(stage0_dir)
    parts = (
        "categories_seconds",
        "llm_load_seconds",
        "untuned_embed_seconds",
        "sft_seconds",
        "embed_seconds",
        "diagnostics_seconds",
    )
    llm_parts = {p: getattr(stages, p) for p in parts}
    trainings = []
    for row in results.rows:
        for variant in ("plain", "enhanced"):
            directory = run_dir / MODELS / Path(getattr(row, f"{variant}_dir")).name
            trained_here = directory != stage0_dir  # the plain SASRec is stage 0's model
            wall = getattr(row, f"{variant}_train_seconds") if trained_here else 0.0
            trainings.append(
                {
                    "backbone": row.backbone,
                    "variant": variant,
                    **_model(directory),
                    "wall_seconds": wall,
                    "trained_in": "downstream" if trained_here else "stage 0",
                }
            )
    return {
        "run_dir": str(run_dir),
        "log": str(log),
        "demo_command": shlex.join(command),
        "llm_cache": str(llm_cache),
        "llm_cache_before": cache_before,  # False: the demo's time includes its conversion
        "demo_seconds": seconds,
        # what the run timed itself (time.perf_counter around each stage in run_tslrec)
        "wall_seconds": walls,
        "unrecorded_seconds": seconds - sum(walls.values()),  # start-up, imports, printing
        "stage0": {
            **stage0,
            "recorded_seconds": results.stage0.seconds,  # results.md's stage 0 line
            "wall_seconds": walls["stage0_sasrec"],  # with its test evaluation
        },
        "stage1_2": {
            **llm_parts,
            "sft_fine_tune_seconds": sft.seconds,  # sft_stats.json; sft_seconds adds samples
            "sft_seconds_per_epoch": sft.seconds_per_epoch,
            "sft_samples": sft.samples,
            "sft_steps": sft.steps,
            "wall_seconds": walls["stage1_2_llm"],
            # the stage-2 read-out, file writes and memory sampling: timed by no record
            "unrecorded_seconds": walls["stage1_2_llm"] - sum(llm_parts.values()),
        },
        "downstream": {
            "wall_seconds": walls["downstream"],
            "trainings": sum(t["trained_in"] == "downstream" for t in trainings),
            "models": trainings,
        },
    }


def _backbone_rows(cfg: Config, backbones: list[str], seeds: list[int]) -> list[dict]:
    """Each plain backbone trained in memory once per seed: its epochs, seconds and NDCG@10."""
    dataset = load_dataset(cfg)
    rows = []
    for backbone in backbones:
        for seed in seeds:
            face = Recommender(backbone, config=cfg, progress=False, seed=seed)
            start = time.perf_counter()
            face.fit(dataset)
            test = face.evaluate("test")
            wall = time.perf_counter() - start
            result = face.result
            rows.append(
                {
                    "backbone": backbone,
                    "seed": seed,
                    "best_epoch": result.best_epoch,
                    "epochs_run": result.epochs_run,
                    # each epoch's training and validation, up to the best epoch's validation
                    "seconds_to_best": result.seconds_to_best,
                    "seconds": result.seconds,
                    "seconds_per_epoch": result.seconds_per_epoch,
                    "wall_seconds": wall,  # with set-up and the test evaluation
                    f"valid_{METRIC}": result.best_valid,
                    f"test_{METRIC}": test[METRIC],
                    "test_HR@10": test["HR@10"],
                }
            )
            print(
                f"{backbone} seed {seed}: best epoch {result.best_epoch}/{result.epochs_run} "
                f"at {rows[-1]['seconds_to_best']:.1f} s, test {METRIC} {test[METRIC]:.4f}",
                file=sys.stderr,
            )
    return rows


def _means(rows: list[dict]) -> dict:
    """Per backbone: the mean (and, over several seeds, the std) of each figure."""
    keys = ("best_epoch", "seconds_to_best", "seconds", f"valid_{METRIC}", f"test_{METRIC}")
    means = {}
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        mine = [r for r in rows if r["backbone"] == backbone]
        means[backbone] = {"seeds": [r["seed"] for r in mine]}
        for key in keys:
            values = [r[key] for r in mine]
            means[backbone][f"{key}_mean"] = statistics.fmean(values)
            if len(values) > 1:
                means[backbone][f"{key}_std"] = statistics.stdev(values)
        means[backbone]["seconds_to_best_max"] = max(r["seconds_to_best"] for r in mine)
    return means


def _figure(reference: float | None, measured: float | None, **target) -> dict:
    """A measured figure beside its reference: ratio reference / measured, and the target."""
    ratio = reference / measured if reference is not None and measured else None
    figure = {"reference": reference, "measured": measured, "ratio": ratio}
    for bound, value in target.items():  # at_most / at_least
        met = None
        if measured is not None and value is not None:
            met = measured <= value if bound == "at_most" else measured >= value
        figure |= {f"target_{bound}": value, "met": met}
    return figure


def _against_reference(
    demo: dict | None, rows: list[dict], means: dict, seeds: list[int], baseline: dict | None
) -> dict:
    """Issue #19's figures and targets set against what was measured (None: not measured)."""
    figures = {}
    if demo is not None:
        stage0, llm = demo["stage0"], demo["stage1_2"]
        figures |= {
            "demo_seconds": _figure(
                REFERENCE_DEMO_SECONDS, demo["demo_seconds"], at_most=TARGET_DEMO_SECONDS
            ),
            "stage0_seconds": _figure(REFERENCE_STAGE0_SECONDS, stage0["seconds"]),
            "stage0_seconds_to_best": _figure(
                REFERENCE_STAGE0_SECONDS_TO_BEST, stage0["seconds_to_best"]
            ),
            "stage0_best_epoch": {
                "reference": f"{REFERENCE_STAGE0_BEST_EPOCH} of {REFERENCE_STAGE0_EPOCHS}",
                "measured": f"{stage0['best_epoch']} of {stage0['epochs_run']}",
            },
            "sft_seconds": _figure(REFERENCE_SFT_SECONDS, llm["sft_fine_tune_seconds"]),
            "stage2_seconds": _figure(REFERENCE_STAGE2_SECONDS, llm["embed_seconds"]),
            "downstream_seconds": _figure(
                REFERENCE_DOWNSTREAM_SECONDS, demo["downstream"]["wall_seconds"]
            ),
        }
    sasrec = means.get("sasrec")
    if sasrec is not None:
        figures["sasrec_seconds_to_best"] = _figure(
            None, sasrec["seconds_to_best_mean"], at_most=TARGET_SASREC_SECONDS_TO_BEST
        )
        seed42 = [r for r in rows if r["backbone"] == "sasrec" and r["seed"] == 42]
        if seed42:  # the reference's seconds to best are seed 42's, the demo's stage 0
            figures["sasrec_seed_42_seconds_to_best"] = _figure(
                REFERENCE_STAGE0_SECONDS_TO_BEST, seed42[0]["seconds_to_best"]
            )
        figures[f"sasrec_test_{METRIC}"] = _figure(
            None, sasrec[f"test_{METRIC}_mean"], at_least=TARGET_SASREC_TEST_NDCG
        )
    for name in HALVED:
        if name not in means:
            continue
        reference = baseline.get(name, {}).get("seconds_to_best_mean") if baseline else None
        figures[f"{name}_seconds_to_best"] = _figure(
            reference,
            means[name]["seconds_to_best_mean"],
            at_most=reference / 2 if reference is not None else None,
        )
    if means and sorted(seeds) != TARGET_SEEDS:
        figures["seeds_note"] = f"the targets are over seeds {TARGET_SEEDS}; measured {seeds}"
    return figures


def main() -> None:
    commit = git_commit()  # the code this process runs, whatever is committed meanwhile
    args = arguments(
        __doc__,
        (("--demo",), {"action": argparse.BooleanOptionalAction, "default": True}),
        (("--run-dir",), {"type": Path, "help": "the demo's fresh output directory"}),
        (("--backbones",), {"nargs": "+", "choices": BACKBONE_NAMES, "default": BACKBONE_NAMES}),
        (("--no-backbones",), {"dest": "backbones", "action": "store_const", "const": []}),
        (("--seeds",), {"nargs": "+", "type": int, "default": TARGET_SEEDS}),
        (("--baseline",), {"type": Path, "help": "an earlier speed JSON: its backbone_means"}),
    )
    if not (args.demo or args.backbones):
        raise SystemExit("--no-demo and --no-backbones: nothing to measure")
    backbones, seeds = list(args.backbones), list(args.seeds)
    cfg = load_config(args.config, args.set)
    baseline = read_json(args.baseline).get("backbone_means") if args.baseline else None
    demo = None
    if args.demo:
        run_dir = args.run_dir or Path("runs") / f"speed-{time.strftime('%Y%m%d-%H%M%S')}"
        demo = _demo_figures(args, run_dir, cfg)
        cfg = load_config(args.config, [*args.set, f"output_dir={run_dir}"])  # its prepared data
    rows = _backbone_rows(cfg, backbones, seeds) if backbones else []
    means = _means(rows)
    figures = {
        "dataset": cfg.data.name,
        "overrides": args.set,
        "protocol": cfg.eval.describe(),
        "reference": "issue #19: a fresh clone on a 2-core AMD EPYC",
        "against_reference": _against_reference(demo, rows, means, seeds, baseline),
        "demo": demo,
        "backbones": rows,
        "backbone_means": means,
        "baseline": str(args.baseline) if args.baseline else None,
        "git_commit": commit,
        "machine": machine(),
        "torch": torch.__version__,
    }
    parts = [] if args.demo and backbones else ["demo" if args.demo else "backbones"]
    if backbones and backbones != list(BACKBONE_NAMES):
        parts += backbones
    if backbones and seeds != TARGET_SEEDS:
        parts.append("seeds-" + "-".join(map(str, seeds)))
    name = result_name("speed", cfg.data.name, *parts, *args.set)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
