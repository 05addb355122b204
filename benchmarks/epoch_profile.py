"""Where the time goes: one training epoch of each plain backbone and a few SFT steps, profiled.

    python benchmarks/epoch_profile.py --config configs/ml-100k.yaml

Per backbone (seeded as the config's training is, under bf16 autocast when
`train.mixed_precision=bf16`): one warm-up epoch, one epoch timed phase by phase (forward and
loss, backward, optimizer step, the validation pass), and one epoch under torch.profiler for the
operators that took most of the CPU time (the profiler slows what it watches, so its shares are
read as shares, the phase seconds come from the unprofiled epoch).
For the LLM: `--sft-steps` SFT steps on one-window samples in the config's batches, timed the
same way after two warm-up steps, then profiled (the category labels are drawn at random: a
step's cost does not depend on them). Writes benchmarks/results/epoch-profile-<dataset>.json and
prints it: the figures issue #19 asks for before any speed-up.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
import torch
from accelerate.utils import set_seed
from common import arguments, machine, publish, result_name
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader

from tslrec.config import Config, load_config
from tslrec.evaluation.evaluator import evaluate
from tslrec.llm.sft import MAX_GRAD_NORM
from tslrec.llm.sft_batches import collate, length_batches
from tslrec.llm.sft_samples import window_samples
from tslrec.models import build_model
from tslrec.pipeline.train import load_dataset
from tslrec.pipeline.tslrec import build_preference_model
from tslrec.provenance import git_commit
from tslrec.training import trainer

TOP_OPERATORS = 8

Phases = dict[str, float]
Step = Callable[[object, Phases], None]


def _timed(phases: Phases, name: str, start: float) -> float:
    now = time.perf_counter()
    phases[name] += now - start
    return now


def _top_operators(prof) -> list[dict]:
    """The operators with the most self CPU time, and their share of the profiled total."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "self_seconds": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:TOP_OPERATORS]
    ]


def _measure(batches: Callable[[], Iterable], step: Step, after: Callable[[Phases], None]) -> dict:
    """Phase seconds of one timed pass over `batches()`, then its operators under the profiler."""
    phases: Phases = defaultdict(float)
    for batch in batches():
        step(batch, phases)
    after(phases)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ignored: Phases = defaultdict(float)
        for batch in batches():
            step(batch, ignored)
        after(ignored)
    return {
        "seconds": dict(phases),
        "total_seconds": sum(phases.values()),
        "top_operators": _top_operators(prof),
    }


def backbone_epoch(cfg: Config, dataset, name: str) -> dict:
    """One training epoch of the plain backbone `name` and its validation pass."""
    run = cfg.for_backbone(name)
    set_seed(run.train.seed)
    model = build_model(dataset.num_items, run.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.train.lr)
    windows = trainer._training_tensors(model, dataset)
    loader = DataLoader(windows, batch_size=run.train.batch_size, shuffle=True)
    model.train()
    bf16 = run.train.mixed_precision == "bf16"  # as accelerate's autocast does it on a CPU

    def step(batch, phases: Phases) -> None:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = trainer._batch_loss(model, batch, run.train, model)
        start = _timed(phases, "forward_and_loss", start)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        start = _timed(phases, "backward", start)
        optimizer.step()
        _timed(phases, "optimizer_step", start)

    def validate(phases: Phases) -> None:
        start = time.perf_counter()
        evaluate(model, dataset, "valid", run.eval)
        _timed(phases, "validation", start)
        model.train()

    for batch in loader:  # warm-up epoch: allocator and thread pools settle
        step(batch, defaultdict(float))
    figures = _measure(lambda: loader, step, validate)
    return {"backbone": name, "batches": len(loader), "windows": len(windows), **figures}


def sft_steps(cfg: Config, dataset, steps: int) -> dict:
    """`steps` SFT steps on one-window samples, batched as fine-tuning batches them."""
    k = cfg.categories.k
    stage0_rows = torch.randn(dataset.num_items, cfg.model.hidden_size)  # item_rows=stage0 only
    model, builder = build_preference_model(cfg, dataset, k, stage0_rows)
    labels = np.random.default_rng(0).integers(0, k, dataset.num_items + 1)
    samples = window_samples(dataset.train_sequences(), labels, k, builder, cfg.sft.seed)
    order = length_batches([len(s.input_ids) for s in samples], cfg.sft.batch_size, cfg.sft.seed)
    batches = [collate([samples[i] for i in batch]) for batch in order[: steps + 2]]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.sft.lr, weight_decay=0.0)
    model.train()

    def step(batch, phases: Phases) -> None:
        start = time.perf_counter()
        _, g_hat = model(batch["input_ids"], batch["attention_mask"])
        loss = model.loss(g_hat, batch["target"])
        start = _timed(phases, "forward_and_loss", start)
        loss.backward()
        start = _timed(phases, "backward", start)
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad()
        _timed(phases, "optimizer_step", start)

    for batch in batches[:2]:
        step(batch, defaultdict(float))
    figures = _measure(lambda: batches[2:], step, lambda phases: None)
    tokens = [int(b["attention_mask"].sum()) for b in batches[2:]]
    per_step = figures["total_seconds"] / max(len(tokens), 1)
    return {
        "steps": len(tokens),
        "mean_tokens_per_step": float(np.mean(tokens)),
        "seconds_per_step": per_step,
        **figures,
    }


def main() -> None:
    commit = git_commit()  # the code this process runs, whatever is committed meanwhile
    args = arguments(
        __doc__,
        (("--backbones",), {"nargs": "+", "default": None}),
        (("--sft-steps",), {"type": int, "default": 10}),
    )
    cfg = load_config(args.config, args.set)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    dataset = load_dataset(cfg)
    names = args.backbones or ["sasrec", *cfg.enhance.backbones]
    figures = {
        "dataset": cfg.data.name,
        "overrides": args.set,
        "backbones": [backbone_epoch(cfg, dataset, name) for name in dict.fromkeys(names)],
        "sft": sft_steps(cfg, dataset, args.sft_steps) if args.sft_steps else None,
        "git_commit": commit,
        "machine": machine(),
        "torch": torch.__version__,
    }
    publish(
        args.out / f"{result_name('epoch-profile', cfg.data.name, *args.set)}.json",
        figures,
        args.note,
    )


if __name__ == "__main__":
    main()
