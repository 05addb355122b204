"""User-level vs instance-level SFT: samples, seconds per epoch, and what the embeddings are worth.

    python benchmarks/sft_efficiency.py --config configs/ml-100k.yaml

User-level SFT runs in full (one sample per user). Instance-level SFT has one sample per
(prefix -> next item) position, O(sum of lengths); it is trained on a seeded subset of as many
samples as user-level has (equal compute), which measures its cost per sample; its full epoch
cost is that times its sample count. Both fine-tuned LLMs then go through stage 2 and an
enhanced SASRec, so their downstream NDCG@10 can be compared. Writes
benchmarks/results/sft-efficiency-<dataset>.json and prints it.
"""

from __future__ import annotations

from common import arguments, publish

from tslrec.config import load_config
from tslrec.llm.sft_samples import count_instance_samples
from tslrec.pipeline.train import load_dataset
from tslrec.pipeline.tslrec import run_tslrec
from tslrec.records import RunResults


def _summary(results: RunResults) -> dict:
    sft, row = results.stages.sft, results.rows[0]
    return {
        "samples_trained": sft.samples,
        "epochs": sft.epochs,
        "seconds_per_epoch_trained": sum(sft.seconds_per_epoch) / len(sft.seconds_per_epoch),
        "seconds_per_sample": sum(sft.seconds_per_epoch) / (sft.samples * sft.epochs),
        "final_epoch_loss": sft.epoch_losses[-1],
        "plain_SASRec_NDCG@10": row.plain["NDCG@10"],
        "enhanced_SASRec_NDCG@10": row.enhanced["NDCG@10"],
        "enhanced_SASRec_HR@10": row.enhanced["HR@10"],
    }


def main() -> None:
    args = arguments(__doc__)
    base = [*args.set, "enhance.backbones=[sasrec]"]
    user = _summary(run_tslrec(load_config(args.config, [*base, "sft.level=user"]), progress=False))
    cfg = load_config(args.config, base)
    instance_total = count_instance_samples(load_dataset(cfg).train_sequences())
    instance = _summary(
        run_tslrec(
            load_config(
                args.config,
                [*base, "sft.level=instance", f"sft.max_samples={user['samples_trained']}"],
            ),
            progress=False,
        )
    )
    user["samples_per_epoch"] = user["samples_trained"]
    user["seconds_per_epoch"] = user["seconds_per_epoch_trained"]
    instance["samples_per_epoch"] = instance_total
    instance["seconds_per_epoch"] = instance["seconds_per_sample"] * instance_total
    figures = {
        "dataset": cfg.data.name,
        "llm": cfg.llm.model,
        "user_level": user,
        "instance_level": instance,
        "epoch_cost_ratio_instance_over_user": instance["seconds_per_epoch"]
        / user["seconds_per_epoch"],
        "note": "instance-level trained on a seeded subset of as many samples as user-level "
        "(equal compute); its full-epoch seconds are seconds_per_sample x samples_per_epoch",
    }
    publish(args.out / f"sft-efficiency-{cfg.data.name}.json", figures, args.note)


if __name__ == "__main__":
    main()
