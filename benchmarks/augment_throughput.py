"""Stage-2 throughput: items per second through the LoRA-adapted model vs the raw LLM forward.

    python benchmarks/augment_throughput.py --config configs/ml-100k.yaml

Builds every item's one-item prompt, batches them by length exactly as `embed_items` does, and
times (a) `PreferenceModel.encode` (the decoder with LoRA adapters, then pooling: what stage 2
runs; the adapters are freshly initialised, which costs the same as fine-tuned ones) and (b) the
raw decoder forward of the same LLM with the adapters switched off, on the same batches. Writes
benchmarks/results/augment-throughput-<dataset>.json and prints it.
"""

from __future__ import annotations

import time

import torch
from common import arguments, publish

from tslrec.config import load_config
from tslrec.llm.sft_batches import pad_batch
from tslrec.pipeline.train import load_dataset
from tslrec.pipeline.tslrec import build_preference_model


def _timed(step, batches) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in batches:
            step(ids, mask)
    return time.perf_counter() - start


def main() -> None:
    args = arguments(__doc__)
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg)
    model, builder = build_preference_model(cfg, dataset, cfg.categories.k)
    model.eval()
    prompts = sorted((builder.build([i]) for i in range(1, dataset.num_items + 1)), key=len)
    size = cfg.augment.batch_size
    batches = [pad_batch(prompts[i : i + size]) for i in range(0, len(prompts), size)]
    decoder = model.llm.get_base_model().get_decoder()
    _timed(lambda i, m: model.encode(i, m), batches[:2])  # warm-up
    tslrec_seconds = _timed(lambda i, m: model.encode(i, m, cfg.augment.pooling), batches)
    with model.llm.disable_adapter():  # peft injects LoRA into the decoder's own layers
        raw_seconds = _timed(
            lambda i, m: decoder(input_ids=i, attention_mask=m, use_cache=False), batches
        )
    items = dataset.num_items
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "dtype": cfg.llm.dtype,
        "items": items,
        "batch_size": size,
        "mean_prompt_tokens": sum(map(len, prompts)) / items,
        "stage2_items_per_second": items / tslrec_seconds,
        "raw_forward_items_per_second": items / raw_seconds,
        "stage2_over_raw": raw_seconds / tslrec_seconds,
        "torch_threads": torch.get_num_threads(),
    }
    publish(args.out / f"augment-throughput-{cfg.data.name}.json", figures, args.note)


if __name__ == "__main__":
    main()
