"""Publish `tslrec compare`: TSLRec's table against plain and against its controls.

    python benchmarks/compare.py --config configs/amazon-office.yaml --backbones sasrec

Runs the comparison (every finished training comes from the pipeline's caches) and writes
benchmarks/results/compare-<dataset>[-<backbones>].json (the backbones when given, so a compare of
some backbones does not overwrite another's): one row per backbone and table (test NDCG@10 / HR@10
mean and std over seeds, tail-target NDCG@10, change against plain, paired t-test p against
plain and against the control best on validation, the table's and the training's seconds) and
the verdict computed from them.
"""

from __future__ import annotations

import torch
from common import arguments, machine, publish, result_name

from tslrec.pipeline.compare import compare_experiment, run_compare
from tslrec.provenance import git_commit


def main() -> None:
    commit = git_commit()  # the code this process runs, whatever is committed meanwhile
    args = arguments(
        __doc__,
        (("--tables",), {"nargs": "+", "default": ["tslrec", "llm-raw", "random", "categories"]}),
        (("--seeds",), {"nargs": "+", "type": int, "default": [42, 43, 44]}),
        (("--backbones",), {"nargs": "+", "default": None}),
    )
    exp = compare_experiment(args.config, args.tables, args.seeds, args.backbones, args.set)
    rows, sentence = run_compare(exp, progress=False)
    figures = {
        "experiment": exp.name,
        "tables": args.tables,
        "seeds": args.seeds,
        "backbones": args.backbones,
        "rows": [row.to_json() for row in rows],
        "verdict": sentence,
        "git_commit": commit,
        "machine": machine(),
        "torch": torch.__version__,
    }
    name = result_name(exp.name, *(args.backbones or []), *args.set)
    publish(args.out / f"{name}.json", figures, args.note)


if __name__ == "__main__":
    main()
