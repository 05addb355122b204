"""Stage-2 throughput: items per second through the fine-tuned model vs the raw LLM forward.

    python benchmarks/augment_throughput.py --config configs/ml-100k.yaml

Builds every item's one-item prompt, batches them by length exactly as `embed_items` does, and
times (a) `PreferenceModel.encode` (LoRA adapters + pooling, what stage 2 runs) and (b) the
plain decoder forward of the same LLM on the same batches. Writes
benchmarks/results/augment-throughput-<dataset>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tslrec.config import load_config
from tslrec.io import write_json
from tslrec.llm.backbone import load_causal_lm
from tslrec.llm.preference_model import PreferenceModel
from tslrec.llm.prompts import PromptBuilder
from tslrec.llm.sft import pad_batch
from tslrec.pipeline.backbone import load_dataset


def _timed(step, batches) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in batches:
            step(ids, mask)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg)
    llm, tokenizer = load_causal_lm(cfg.llm)
    text = dataset.has_text
    builder = PromptBuilder(
        tokenizer,
        cfg.prompt,
        dataset.num_items,
        dataset.titles if text else None,
        dataset.attributes if text else None,
    )
    model = PreferenceModel(
        llm, cfg.categories.k, cfg.sft, builder.item_token_ids, builder.vocab_size
    ).eval()
    prompts = sorted((builder.build([i]) for i in range(1, dataset.num_items + 1)), key=len)
    size = cfg.augment.batch_size
    batches = [pad_batch(prompts[i : i + size]) for i in range(0, len(prompts), size)]
    decoder = model.llm.get_base_model().get_decoder()
    _timed(lambda i, m: model.encode(i, m), batches[:2])  # warm-up
    tslrec_seconds = _timed(lambda i, m: model.encode(i, m, cfg.augment.pooling), batches)
    raw_seconds = _timed(
        lambda i, m: decoder(input_ids=i, attention_mask=m, use_cache=False), batches
    )
    with model.llm.disable_adapter():
        no_adapter_seconds = _timed(lambda i, m: model.encode(i, m, cfg.augment.pooling), batches)
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
        "stage2_without_adapters_items_per_second": items / no_adapter_seconds,
        "stage2_over_raw": raw_seconds / tslrec_seconds,
        "torch_threads": torch.get_num_threads(),
    }
    write_json(args.out / f"augment-throughput-{cfg.data.name}.json", figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
