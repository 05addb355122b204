"""One Accelerator per stage, even when several stages share a process.

accelerate keeps its settings (mixed precision, gradient accumulation) in process-wide
singletons and refuses a second `Accelerator` with other settings. `tslrec run` fine-tunes the
LLM and then trains backbones in one process, each stage with its own settings, so every stage
starts from a clean slate. The process group (`PartialState`) is kept: under
`accelerate launch` it belongs to the whole process, not to a stage. That suits plain
data-parallel launches (DDP, DeepSpeed); an FSDP launch records its plugin in the kept state
and would need it restored here before a second stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedType, parse_flag_from_env

from tslrec.errors import TslrecError


def process_state() -> PartialState:
    """This process's place in a launch (`accelerate launch`, `torchrun`), or a lone process.

    Whoever builds the `PartialState` first fixes it for the whole process, and a bare
    `PartialState()` on a machine without GPUs ignores the launch: each process would train
    alone, all into the same directories. `ACCELERATE_USE_CPU` (set by `accelerate launch
    --cpu`) asks for a CPU process group, as an `Accelerator` would.
    """
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise TslrecError(
            f"launched as {launched} processes, but accelerate sees {state.num_processes}: "
            "each would train alone into the same directories; on machines without GPUs "
            "set ACCELERATE_USE_CPU=1"
        )
    return state


def wait_for_everyone() -> None:
    """A barrier over the launch that also holds for CPU process groups on GPU machines.

    accelerate's own barrier names the GPU of each process's local rank, even for a CPU
    process group; torch then allocates on that GPU, which does not exist where a machine has
    fewer GPUs than the launch has processes ("invalid device ordinal", seen on a one-GPU
    machine under `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2`).
    """
    state = process_state()
    if state.distributed_type == DistributedType.MULTI_CPU:
        torch.distributed.barrier()  # gloo (or MPI): torch puts the barrier on the CPU
    else:
        state.wait_for_everyone()


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (writing a cache); the others then read it.

    accelerate's own version waits at the barrier that `wait_for_everyone` replaces.
    """
    main = process_state().is_main_process
    if not main:
        wait_for_everyone()
    yield
    if main:
        wait_for_everyone()


def stage_accelerator(**settings: Any) -> Accelerator:
    """An `Accelerator` with exactly these settings, whatever an earlier stage asked for."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(**settings)


def launch_key(processes: int | None = None) -> list[dict]:
    """What a launch adds to a cache key: the process count (this launch's by default), since
    every process trains on a whole `batch_size`. Nothing for one process, so single-process
    keys stay as they were."""
    processes = processes or process_state().num_processes
    return [{"processes": processes}] if processes > 1 else []
