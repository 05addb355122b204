"""Does the fusion adapter's starting scale matter? Plain vs three fusion starts, per seed.

    python benchmarks/fusion_init.py --config configs/ml-100k.yaml --seeds 42 43 44

`fusion` adds an MLP over the frozen LLM table to a fresh id embedding. At its default
initialisation the MLP's output is about ten times the id embedding's scale (std 0.02), so a
fused model starts far from the plain one. This trains, for each backbone and seed, the plain
model and three fusion variants that differ only in the adapter's last layer at the start:
`default` (PyTorch's init), `zero` (all zeros: the model starts as the plain one and the
gradient decides how much of the LLM to use) and `small` (default weights times 0.1, zero bias).
Takes the stage-2 table from `--table` or from the caches of `tslrec run` with the same config
(running stages 0-2 if missing). Without `--set` (or with runtime settings only, such as
train.num_threads) it trains into the model directories `tslrec run` and `tslrec experiment`
use for each seed, so a plain model one of them trained is reused, not retrained; never run it
beside a process that is training the same backbone and seed there. Other `--set` values train
into <output_dir>/fusion-init/<overrides>/. The `default` start is the pipeline's fusion model
retrained under another name: on a CPU, `--starts zero small` and `--backbones` save hours.
Writes benchmarks/results/fusion-init-<dataset>[-<overrides>][-seeds-<list>][-<subset>].json
and prints it (`--seeds 42`, `--seeds 43`, ... in separate processes share a GPU well; give
them `--table` or run stages 0-2 once first, since processes outside a launch do not
coordinate cache writes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed
from common import arguments, machine, publish, result_name

from tslrec.config import RUNTIME_FIELDS, Config, load_config
from tslrec.data.dataset import SequenceDataset
from tslrec.evaluation.formatting import relative_change
from tslrec.evaluation.significance import paired_test_of_runs
from tslrec.llm.augment import load_item_embeddings
from tslrec.models import BACKBONES as MODELS
from tslrec.models.item_embedding import (
    ADAPTER_STARTS,
    ItemEmbedding,
    build_item_embedding,
    table_fingerprint,
)
from tslrec.pipeline.experiment import with_seed
from tslrec.pipeline.train import load_dataset, run_dir, train_and_evaluate
from tslrec.pipeline.tslrec import stage0, stage1_and_2

BACKBONES, STARTS = list(MODELS), list(ADAPTER_STARTS)  # every backbone and adapter start
DEFAULT_SEEDS = [42, 43, 44]
# settings that change no trained model, so the pipeline's directories can be shared
SHAREABLE_SETTINGS = {"output_dir", *(f"train.{name}" for name in RUNTIME_FIELDS)}


def _fusion(table: torch.Tensor, cfg: Config, start: str) -> ItemEmbedding:
    set_seed(cfg.train.seed)  # alike for every start: they differ in the adapter's last layer
    return build_item_embedding(
        "fusion", table, cfg.model.hidden_size, cfg.model.dropout, adapter_start=start
    )


def compare(
    cfg: Config, dataset: SequenceDataset, table: torch.Tensor, starts: list[str], progress: bool
) -> list[dict]:
    """The plain model and each fusion start for one backbone and seed."""
    plain = train_and_evaluate(cfg, dataset, progress=progress)
    rows = []
    for start in starts:
        tag = f"{cfg.model.name}-fusion-{start}"
        spec = {
            "mode": "fusion",
            "external_dim": table.size(1),
            "adapter_start": start,
            "table": table_fingerprint(table),  # a finished run is reused on its own table only
        }
        meta = {"item_embedding": spec}
        enhanced = train_and_evaluate(
            cfg,
            dataset,
            item_embedding=_fusion(table, cfg, start),
            tag=tag,
            meta=meta,
            progress=progress,
        )
        test = paired_test_of_runs(run_dir(cfg), run_dir(cfg, tag))
        rows.append(
            {
                "backbone": cfg.model.name,
                "seed": cfg.train.seed,
                "start": start,
                "plain_NDCG@10": plain.test["NDCG@10"],
                "fusion_NDCG@10": enhanced.test["NDCG@10"],
                "change": relative_change(plain.test["NDCG@10"], enhanced.test["NDCG@10"]),
                "plain_HR@10": plain.test["HR@10"],
                "fusion_HR@10": enhanced.test["HR@10"],
                "plain_best_epoch": plain.best_epoch,
                "fusion_best_epoch": enhanced.best_epoch,
                "paired_test_NDCG@10": test,
            }
        )
    return rows


def main() -> None:
    args = arguments(
        __doc__,
        (("--seeds",), {"nargs": "+", "type": int, "default": DEFAULT_SEEDS}),
        (("--table",), {"type": Path, "help": "a stage-2 item table (.safetensors)"}),
        (("--backbones",), {"nargs": "+", "choices": BACKBONES, "default": BACKBONES}),
        (("--starts",), {"nargs": "+", "choices": STARTS, "default": STARTS}),
        (("--progress",), {"action": "store_true", "help": "a bar per training (long runs)"}),
    )
    base = load_config(args.config, args.set)
    dataset = load_dataset(base)  # the same for every seed and backbone
    if args.table is None:  # the stage-2 table of `tslrec run`, computed if not cached
        args.table = stage1_and_2(base, dataset, stage0(base, dataset, progress=False)[1])[0]
    table = load_item_embeddings(args.table)[0]
    rows = []
    if any(o.split("=")[0].strip() not in SHAREABLE_SETTINGS for o in args.set):
        # other settings than `tslrec run`'s: other models, which must not replace its own
        own = base.output_dir / "fusion-init" / result_name(*args.set)
        args.set = [*args.set, f"output_dir={own}"]
    for seed in args.seeds:
        for backbone in args.backbones:
            cfg = with_seed(load_config(args.config, args.set).for_backbone(backbone), seed)
            rows.extend(compare(cfg, dataset, table, args.starts, args.progress))
    means = {
        f"{backbone}/{start}": float(
            np.mean([r["change"] for r in rows if (r["backbone"], r["start"]) == (backbone, start)])
        )
        for backbone in args.backbones
        for start in args.starts
    }
    figures = {
        "dataset": base.data.name,
        "overrides": args.set,
        "seeds": args.seeds,
        "mean_change_NDCG@10": means,
        "rows": rows,
        "table": str(args.table),
        "machine": machine(),
        "torch": torch.__version__,
    }
    seeds = [] if args.seeds == DEFAULT_SEEDS else ["seeds-" + "-".join(map(str, args.seeds))]
    subset = [
        *([] if args.backbones == BACKBONES else args.backbones),
        *([] if args.starts == STARTS else args.starts),
    ]
    name = result_name("fusion-init", base.data.name, *args.set, *seeds, *subset)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
