"""What every benchmark script shares: its arguments and where its JSON goes."""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

from tslrec.io import write_json


def arguments(doc: str | None, *extra: tuple[tuple[str, ...], dict]) -> argparse.Namespace:
    """--config, --set, --out and --note, plus any script-specific arguments."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument(
        "--set", nargs="*", default=[], help="config overrides, e.g. train.lr=0.002"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--note", help="how to read the figures, e.g. that the machine was shared")
    for names, options in extra:
        parser.add_argument(*names, **options)
    return parser.parse_args()


def _cpu_model() -> str:
    """The processor's model name: two x86_64 machines (one with AMX, one without) differ
    twofold in bfloat16 speed and draw other floating-point results."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    names = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor()


def machine() -> str:
    """The processor and thread count, and the GPU where one is visible (the backbones and the
    LLM then run on it): which machine a timing or a random stream belongs to. Files written
    before the model name was recorded say only "x86_64, 2 threads"."""
    model = _cpu_model()
    arch = f"{platform.machine()} {model}" if model else platform.machine()
    threads = torch.get_num_threads()
    cpu = f"{arch}, {threads} thread{'' if threads == 1 else 's'}"
    return f"{cpu}, {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else cpu


def llm_stages(cfg):
    """The dataset, stage 0's item table and stages 1-2 of ``cfg``, from the caches of `tslrec
    run` with the same config (run where missing): ``(dataset, stage0 table, table path,
    stages)``."""
    from tslrec.pipeline.train import load_dataset
    from tslrec.pipeline.tslrec import stage0, stage1_and_2

    dataset = load_dataset(cfg)
    _, stage0_table = stage0(cfg, dataset, progress=False)
    table_path, stages = stage1_and_2(cfg, dataset, stage0_table)
    return dataset, stage0_table, table_path, stages


def result_name(*parts: str) -> str:
    """A JSON file name from its parts (dataset, model, overrides), safe on every file system."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts))


def publish(path: Path, figures: dict, note: str | None = None) -> None:
    """Write the figures, with the command line that produced them, as JSON and print them."""
    figures = {"command": shlex.join(["python", *sys.argv]), **figures}
    if note:  # after any note the script itself writes
        figures["note"] = f"{figures['note']}. {note}" if "note" in figures else note
    write_json(path, figures)
    print(json.dumps(figures, indent=2))
