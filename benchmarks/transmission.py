"""Does stage 1 transmit? The diagnostics of stages 1 and 2 alone, without any downstream model.

    python benchmarks/transmission.py --config configs/ml-100k.yaml [--set sft.samples=history]

Runs (or takes from the caches of `tslrec run` with the same config) stage 0 and the LLM stages,
and prints what the pipeline measured of them (`tslrec.llm.transmission`): the fine-tuned head's
top-1 / top-5 on one-item prompts against each item's latent category, the linear and k-NN
probes on stage 0's table, on the LLM before fine-tuning and on the stage-2 table, the held-out
users' loss against the mean target, and the SFT wall time. It is how the SFT options are
compared quickly, before the backbones are trained on a table.
Writes benchmarks/results/transmission-<dataset>[-<overrides>].json and prints it.
"""

from __future__ import annotations

import torch
from common import arguments, llm_stages, machine, publish, result_name

from tslrec.config import load_config


def main() -> None:
    args = arguments(__doc__)
    cfg = load_config(args.config, args.set)
    _, _, _, stages = llm_stages(cfg)
    sft = stages.sft
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "overrides": args.set,
        "prompt_rendering": cfg.prompt.rendering,
        "sft": cfg.sft.model_dump(mode="json"),
        "features": cfg.augment.features,
        "transmission": stages.transmission.to_json(),
        "sft_samples": sft.samples,
        "sft_seconds": sft.seconds,
        "sft_seconds_per_epoch": sft.seconds_per_epoch,
        "sft_epoch_losses": sft.epoch_losses,
        "sft_mean_target_loss": sft.mean_target_loss,
        "embed_seconds": stages.embed_seconds,
        "stage1_key": stages.stage1_key,
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
    }
    name = result_name("transmission", cfg.data.name, *args.set)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
