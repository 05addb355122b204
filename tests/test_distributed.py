"""`tslrec run` under a two-process launch on CPUs: really sharded, written once, reported once."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from typer.testing import CliRunner

from tslrec.cli import app
from tslrec.config import save_config
from tslrec.errors import TslrecError
from tslrec.io import read_json
from tslrec.pipeline.tslrec import run_tslrec
from tslrec.records import ModelRecord, RunResults
from tslrec.training import accelerator
from tslrec.training.accelerator import process_state


def test_two_processes_share_the_work_and_only_the_first_writes_and_reports(
    tmp_path, pipeline_config
):
    cfg = pipeline_config()
    save_config(cfg, tmp_path / "tiny.yaml")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    outcome = subprocess.run(
        [*launch, "-m", "tslrec.cli", "run", "-c", str(tmp_path / "tiny.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert outcome.returncode == 0, _rank_errors(outcome.stderr)
    assert outcome.stdout.count("results in") == 1  # the second process stays quiet

    results = RunResults.load(cfg.output_dir / "results.json")
    # 54 training users (6 of 60 held out) in batches of 8 are 7 SFT steps for one process,
    # 4 for each of two (the last batch padded by accelerate)
    assert results.stages.sft.samples == 54
    assert results.stages.sft.steps == 4
    assert results.stages.embed.items == 20  # one process embedded every item
    for row in results.rows:
        for model_dir in (row.plain_dir, row.enhanced_dir):
            assert ModelRecord.load(f"{model_dir}/results.json").processes == 2
            assert len(read_json(f"{model_dir}/history.json")) == cfg.train.epochs

    # a launched model serves one process
    evaluate = ["evaluate", "-c", str(tmp_path / "tiny.yaml"), "-b", "sasrec"]
    outcome = CliRunner().invoke(app, evaluate)
    assert outcome.exit_code == 0, outcome.output

    # twice the batch is another model: one process does not take these from the cache
    alone = run_tslrec(cfg, progress=False)
    assert alone.stages.sft.steps == 7
    assert ModelRecord.load(f"{alone.rows[0].plain_dir}/results.json").processes == 1


def _rank_errors(stderr: str) -> str:
    """Each rank's last lines: the rank that failed first is buried under the others' noise."""
    lines = [(line.split("]", 1)[0], line) for line in stderr.splitlines()]
    ranks = sorted({rank for rank, _ in lines if rank.startswith("[rank")})
    tails = ["\n".join([ln for rank, ln in lines if rank == r][-25:]) for r in ranks]
    return "\n\n".join(tails) or stderr[-3000:]


def test_a_launch_that_accelerate_does_not_see_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched, but this process group has one member
    with pytest.raises(TslrecError, match="launched as 2 processes, but accelerate sees 1"):
        process_state()


def test_cpu_process_groups_wait_at_a_cpu_barrier(monkeypatch):
    """accelerate's own barrier names the local rank's GPU even for a CPU process group, which
    fails on a machine with fewer GPUs than processes; a CPU group's barrier names none."""
    calls = []
    state = SimpleNamespace(
        distributed_type=DistributedType.MULTI_CPU,
        is_main_process=False,
        wait_for_everyone=lambda: calls.append("accelerate"),
    )
    monkeypatch.setattr(accelerator, "process_state", lambda: state)
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **kw: calls.append((a, kw)))
    accelerator.wait_for_everyone()
    assert calls == [((), {})]
    state.distributed_type = DistributedType.MULTI_GPU  # accelerate's is right for GPU groups
    accelerator.wait_for_everyone()
    assert calls[-1] == "accelerate"

    # the main process runs the block before the barrier, the others after it
    for main, expected in ((True, ["block", "accelerate"]), (False, ["accelerate", "block"])):
        calls.clear()
        state.is_main_process = main
        with accelerator.main_process_first():
            calls.append("block")
        assert calls == expected
