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

from typing import Any

from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState


def stage_accelerator(**settings: Any) -> Accelerator:
    """An `Accelerator` with exactly these settings, whatever an earlier stage asked for."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(**settings)
