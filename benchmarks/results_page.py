"""Regenerate docs/results.md from the JSON figures under benchmarks/results/.

    python benchmarks/results_page.py        (or: make results)

The page only reads what the benchmark scripts wrote: each JSON carries the command that
produced it, so every figure on the page can be reproduced from the line printed above it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tslrec.evaluation.formatting import compare_table, signed_percent, summary_table
from tslrec.io import atomic_path, read_json
from tslrec.records import CompareRow

RESULTS = Path("benchmarks/results")
PAGE = Path("docs/results.md")
RECBOLE_BAR = (
    "RecBole 1.2.1 SASRec (CE, 5-core ML-100K, chronological leave-one-out, full ranking, "
    "max length 50, hidden 64), measured on this machine: test NDCG@10 0.0586, HR@10 0.1241, "
    "492 s to its best epoch (RecBole's own run, made once; no script here reproduces it)."
)


def _load() -> dict[str, dict]:
    return {p.stem: read_json(p) for p in sorted(RESULTS.glob("*.json"))}


def _elsewhere(figures: dict, machine: str) -> str:
    """A note on a row measured on another machine than the page's (a GPU, say)."""
    other = figures.get("machine", machine)
    return f" (on {other})" if other != machine else ""


def _command(figures: dict) -> str:
    """The command as a code span; double backticks, since a --note may quote code itself."""
    return f"`` {figures['command']} ``" if "command" in figures else "(command not recorded)"


def _backbones(runs: dict[str, dict], machine: str) -> list[str]:
    rows = [r for r in runs.values() if "backbone" in r and "test" in r]
    lines = [
        "## Plain backbones",
        "",
        RECBOLE_BAR,
        "",
        "NDCG@10 / HR@10 rank every item; *seen masked* ranks only items the user has not "
        "interacted with (the protocol of most ML-1M papers), from the same model.",
        "",
        "| dataset | backbone | max len | valid NDCG@10 | NDCG@10 | HR@10 | seen masked: NDCG@10 "
        "| HR@10 | best epoch / run | s/epoch | s to best | peak RSS MB | command |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["backbone"])):
        memory = f"{r['peak_memory_mb']:.0f}" if "peak_memory_mb" in r else ""
        masked = r.get("test_by_mask_seen", {}).get("true")
        seen = f"{masked['NDCG@10']:.4f} | {masked['HR@10']:.4f}" if masked else " | "
        valid = f"{r['best_valid_NDCG@10']:.4f}" if "best_valid_NDCG@10" in r else ""
        lines.append(
            f"| {r['dataset']} | {r['backbone']}{_elsewhere(r, machine)} | {r['max_len']} "
            f"| {valid} | {r['test']['NDCG@10']:.4f} "
            f"| {r['test']['HR@10']:.4f} | {seen} | {r['best_epoch']} / {r['epochs_run']} "
            f"| {r['seconds_per_epoch']:.1f} | {r['seconds_to_best']:.0f} | {memory} "
            f"| {_command(r)} |"
        )
    notes = [f"- {r['dataset']} {r['backbone']}: {r['note']}" for r in rows if "note" in r]
    return [*lines, "", *notes, ""] if notes else [*lines, ""]


def _experiment(e: dict, machine: str) -> list[str]:
    grid = f", grid over {e['grid']['key']}" if e["grid"] else ""
    mode = f", {e['mode']}" if e["mode"] else ""
    lines = [
        f"## TSLRec vs plain: experiment {e['experiment']} "
        f"({e['llm']}{mode}, seeds {e['seeds']}{grid}){_elsewhere(e, machine)}",
        "",
        _command(e),
        "",
        summary_table(e["summary"]),
        "",
        "Paired tests over users on per-user NDCG@10 averaged across seeds. LLM-stage costs:",
        "",
    ]
    for st in e["stages"]:
        value = f" {e['grid']['key']} = {json.loads(st['grid_value'])}:" if e["grid"] else ""
        lines.append(
            f"- {st['dataset']}{value} stage 0 {st['stage0_seconds']:.0f} s, SFT "
            f"{st['sft_samples']} samples in {st['sft_seconds']:.0f} s, "
            f"stage 2 {st['embed_seconds']:.0f} s."
        )
    return [*lines, *_note(e), ""]


def _sft(e: dict) -> list[str]:
    user, inst = e["user_level"], e["instance_level"]
    lines = [
        f"## User-level vs instance-level SFT: {e['dataset']} ({e['llm']})",
        "",
        _command(e),
        "",
        "| level | samples / epoch | s / sample | s / epoch | enhanced SASRec NDCG@10 | HR@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in (("user", user), ("instance", inst)):
        lines.append(
            f"| {name} | {s['samples_per_epoch']} | {s['seconds_per_sample']:.4f} "
            f"| {s['seconds_per_epoch']:.0f} | {s['enhanced_SASRec_NDCG@10']:.4f} "
            f"| {s['enhanced_SASRec_HR@10']:.4f} |"
        )
    ratio = e["epoch_cost_ratio_instance_over_user"]
    lines += [
        "",
        f"Instance-level costs {ratio:.1f}x more per epoch. "
        f"Plain SASRec NDCG@10: {user['plain_SASRec_NDCG@10']:.4f}. {e['note']}.",
        "",
    ]
    return lines


def _augment(a: dict) -> list[str]:
    return [
        f"## Stage-2 throughput: {a['dataset']} "
        f"({a['llm']}, {a['dtype']}, batch {a['batch_size']})",
        "",
        _command(a),
        "",
        f"{a['items']} items, {a['mean_prompt_tokens']:.1f} prompt tokens on average: "
        f"stage 2 {a['stage2_items_per_second']:.1f} items/s, raw decoder forward (LoRA off) "
        f"on the same batches {a['raw_forward_items_per_second']:.1f} items/s "
        f"({100 * a['stage2_over_raw']:.1f}%).",
        "",
    ]


def _probe(p: dict) -> list[str]:
    acc = p["accuracy"]
    return [
        f"## What the enhanced item embeddings know: {p['dataset']} ({p['llm']}, "
        f"{p['prompt_rendering']} prompts, K = {p['categories_k']})",
        "",
        _command(p),
        "",
        f"Accuracy of predicting each of {p['items']} items' latent category ({p['probe']}; "
        f"the largest category holds {100 * p['largest_category_share']:.1f}% of the items):",
        "",
        "| item table | accuracy |",
        "|---|---:|",
        f"| stage-0 SASRec (the categories' source) | {acc['stage0_sasrec']:.3f} |",
        f"| stage 2: the fine-tuned LLM | {acc['stage2_finetuned_llm']:.3f} |",
        f"| the same prompts, LLM before fine-tuning | {acc['llm_before_finetuning']:.3f} |",
        "",
    ]


def _fit_gap(f: dict) -> list[str]:
    lines = [
        f"## Does the enhanced model fit its training data better or worse? {f['experiment']}",
        "",
        _command(f),
        "",
        "| backbone | seed | training loss, plain | enhanced | logged loss gap (enhanced - plain) "
        "by epochs |",
        "|---|---:|---:|---:|---|",
    ]
    for r in f["rows"]:
        gaps = "; ".join(
            f"{span}: {gap:+.4f}" if isinstance(gap, float) else f"{span}: {gap}"
            for span, gap in r["loss_gap"].items()
        )
        lines.append(
            f"| {r['backbone']} | {r['seed']} | {r['plain_training_loss']:.4f} "
            f"| {r['enhanced_training_loss']:.4f} | {gaps} |"
        )
    return [*lines, "", "Training loss: the best checkpoint's, frozen, without dropout.", ""]


def _fusion_init(runs: list[dict]) -> list[str]:
    """One table over every fusion_init.py file (one process per seed writes one each)."""
    if not runs:
        return []
    lines = [
        "## The fusion adapter's starting scale",
        "",
        # files written before "machine" replaced "device" as the key
        *[
            f"- {_command(r)} on {r.get('machine', r.get('device'))} (torch {r['torch']})"
            for r in runs
        ],
        *[f"- note: {r['note']}" for r in runs if "note" in r],
        "",
        "| dataset | backbone | seed | adapter start | plain NDCG@10 | fusion NDCG@10 | change "
        "| paired t p |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        for r in sorted(run["rows"], key=lambda r: (r["backbone"], r["seed"])):
            p = r["paired_test_NDCG@10"]["ttest_p"]
            lines.append(
                f"| {run['dataset']} | {r['backbone']} | {r['seed']} | {r['start']} "
                f"| {r['plain_NDCG@10']:.4f} | {r['fusion_NDCG@10']:.4f} "
                f"| {signed_percent(100 * r['change'])} | {p:.3g} |"
            )
    return [*lines, ""]


def _compare(c: dict, machine: str) -> list[str]:
    return [
        f"## Is the LLM worth it? {c['experiment']} (seeds {c['seeds']}){_elsewhere(c, machine)}",
        "",
        _command(c),
        "",
        compare_table([CompareRow.from_json(row, c["experiment"]) for row in c["rows"]]),
        "",
        f"Verdict: {c['verdict']}",
        *([f"\nNote: {c['note']}"] if "note" in c else []),
        "",
    ]


def _figure(value) -> str:
    """A reference, measured or target figure; blank where there is none."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _measured_under(title: str, figures: dict, machine: str) -> list[str]:
    """A section's heading, naming the dataset and the overrides it was measured under, and
    the command that measured it."""
    settings = ", ".join(figures["overrides"]) or "the config's defaults"
    heading = f"## {title}: {figures['dataset']} ({settings}){_elsewhere(figures, machine)}"
    return [heading, "", _command(figures), ""]


def _note(figures: dict) -> list[str]:
    return [f"\nNote: {figures['note']}"] if "note" in figures else []


def _speed(s: dict, machine: str) -> list[str]:
    """Issue #19's figures: each against its reference and target, and the plain backbones'
    seconds to their best epoch over seeds."""
    lines = [
        *_measured_under("Speed", s, machine),
        "| figure | reference | measured | target | met |",
        "|---|---:|---:|---:|---|",
    ]
    for name, f in s["against_reference"].items():
        target = f.get("target_at_most", f.get("target_at_least"))
        bound = "<= " if "target_at_most" in f else ">= " if target is not None else ""
        met = {True: "yes", False: "no"}.get(f.get("met"), "")
        lines.append(
            f"| {name} | {_figure(f['reference'])} "
            f"| {_figure(f['measured'])} | {bound}{_figure(target)} "
            f"| {met} |"
        )
    means = s.get("backbone_means") or {}
    if means:
        lines += [
            "",
            "| backbone | seeds | best epoch | s to best | s in all | valid NDCG@10 "
            "| test NDCG@10 |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name, m in means.items():
            lines.append(
                f"| {name} | {m['seeds']} "
                f"| {m['best_epoch_mean']:.1f} +- {m['best_epoch_std']:.1f} "
                f"| {m['seconds_to_best_mean']:.1f} +- {m['seconds_to_best_std']:.1f} "
                f"| {m['seconds_mean']:.1f} | {m['valid_NDCG@10_mean']:.4f} "
                f"+- {m['valid_NDCG@10_std']:.4f} | {m['test_NDCG@10_mean']:.4f} "
                f"+- {m['test_NDCG@10_std']:.4f} |"
            )
    return [*lines, *_note(s), ""]


def _epoch_profile(e: dict, machine: str) -> list[str]:
    """Where an epoch's time goes, phase by phase, and the operators that took most of it."""
    lines = [
        *_measured_under("Where the time goes", e, machine),
        "| what | batches | forward + loss s | backward s | step s | validation s | total s "
        "| top operators (share of CPU time) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    sft = e.get("sft")
    parts = [(b["backbone"] + " epoch", b["batches"], b) for b in e["backbones"]]
    if sft:
        parts.append((f"SFT, {sft['mean_tokens_per_step']:.0f} tokens/step", sft["steps"], sft))
    for what, batches, figures in parts:
        sec = figures["seconds"]
        top = ", ".join(f"{o['op']} {o['share']:.0%}" for o in figures["top_operators"][:4])
        validation = f"{sec['validation']:.2f}" if "validation" in sec else ""
        lines.append(
            f"| {what} | {batches} | {sec['forward_and_loss']:.2f} | {sec['backward']:.2f} "
            f"| {sec['optimizer_step']:.2f} | {validation} | {figures['total_seconds']:.2f} "
            f"| {top} |"
        )
    return [*lines, *_note(e), ""]


def _patience(p: dict, machine: str) -> list[str]:
    """What a shorter early-stopping patience would have kept, replayed from histories."""
    lines = [
        f"## Early-stopping patience: {p['dataset']}, replayed from {len(p['models'])} "
        f"trainings under patience {p['recorded_patience']}{_elsewhere(p, machine)}",
        "",
        _command(p),
        "",
        "| patience | same best epoch | best valid NDCG@10 change: mean | worst "
        "| training seconds saved |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in p["summary"]:
        lines.append(
            f"| {row['patience']} | {row['same_best_epoch']} of {row['models']} "
            f"| {row['valid_change_%_mean']:+.1f}% | {row['valid_change_%_worst']:+.1f}% "
            f"| {row['seconds_saved_share']:.0%} |"
        )
    return [*lines, ""]


def _transmission(t: dict) -> list[str]:
    """What stage 1 got through to stage 2 (benchmarks/transmission.py)."""
    d = t["transmission"]
    head, probes = d["head_one_item"], d["probes"]
    overrides = ", ".join(t["overrides"]) or "defaults"
    lines = [
        f"## Transmission: {t['dataset']}, {t['prompt_rendering']} prompts ({overrides})",
        "",
        _command(t),
        "",
        "| figure | value | floor |",
        "|---|---:|---:|",
        f"| head top-1 on one-item prompts | {100 * head['top1']:.1f}% | "
        f"{100 * head['majority_rate']:.1f}% (largest category) |",
        f"| head top-5 | {100 * head['top5']:.1f}% | {100 * head['top5_chance']:.1f}% (5/K) |",
        f"| true category's mean rank of {d['categories_k']} | {head['mean_rank']:.1f} | "
        f"{(d['categories_k'] + 1) / 2:.1f} |",
    ]
    for table, probe in probes.items():
        lines.append(
            f"| {table}: linear / 10-NN probe | {100 * probe['linear']:.1f}% / "
            f"{100 * probe['knn']:.1f}% | |"
        )
    if d.get("heldout"):
        h = d["heldout"]
        lines.append(
            f"| held-out users' loss ({h['users']}) | {h['loss']:.4f} | "
            f"{h['mean_target_loss']:.4f} (mean target) |"
        )
    per_epoch = sum(t["sft_seconds_per_epoch"]) / len(t["sft_seconds_per_epoch"])
    lines += [
        "",
        f"SFT: {t['sft_samples']} samples, {len(t['sft_seconds_per_epoch'])} epochs, "
        f"{per_epoch:.0f} s/epoch ({t['machine']}).",
        *([f"\nNote: {t['note']}"] if "note" in t else []),
        "",
    ]
    return lines


def _downstream_cell(t: dict) -> str:
    """Enhanced backbone's validation / test NDCG@10 where the run trained one (--backbone)."""
    if "downstream" not in t:
        return ""
    enhanced = t["downstream"]["enhanced"]
    return f"{enhanced['valid_NDCG@10']:.4f} / {enhanced['test_NDCG@10']:.4f}"


def _plain_line(runs: list[dict]) -> list[str]:
    """The plain backbone's figures, the same for every row (same data, settings and seed)."""
    down = next((t["downstream"] for t in runs if "downstream" in t), None)
    if down is None:
        return []
    plain = down["plain"]
    return [
        f"Enhanced column: {down['backbone']} trained on the row's table, best "
        f"validation / test NDCG@10; plain {down['backbone']}: {plain['valid_NDCG@10']:.4f} / "
        f"{plain['test_NDCG@10']:.4f}. Settings are chosen on validation.",
        "",
    ]


def _transmission_overview(runs: list[dict]) -> list[str]:
    """All SFT settings tried on one dataset side by side: which one got through to stage 2."""
    lines = [
        f"## Transmission: {runs[0]['dataset']}, every SFT setting measured",
        "",
        "Seed 42; each row's own section below has its command and floors. Steps: optimizer "
        "steps of the whole fine-tuning. Stage 0: the linear probe on stage 0's table, which "
        "tells rows measured on another stage-0 table (an earlier version of the code) apart.",
        "",
        *_plain_line(runs),
        "| prompts | overrides | stage 0 | steps | head top-1 | top-5 | stage-2 linear probe "
        "| held-out loss / mean target | s/epoch | enhanced valid / test NDCG@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in sorted(runs, key=lambda t: (t["prompt_rendering"], len(t["overrides"]))):
        d, sft = t["transmission"], t["sft"]
        head, held = d["head_one_item"], d.get("heldout") or {}
        steps = len(t["sft_seconds_per_epoch"]) * -(-t["sft_samples"] // sft["batch_size"])
        per_epoch = sum(t["sft_seconds_per_epoch"]) / len(t["sft_seconds_per_epoch"])
        loss = f"{held['loss']:.4f} / {held['mean_target_loss']:.4f}" if held else ""
        lines.append(
            f"| {t['prompt_rendering']} | {', '.join(t['overrides']) or 'defaults'} "
            f"| {100 * d['probes']['stage0_sasrec']['linear']:.1f}% | {steps} "
            f"| {100 * head['top1']:.1f}% | {100 * head['top5']:.1f}% "
            f"| {100 * d['probes']['stage2_hidden']['linear']:.1f}% | {loss} | {per_epoch:.0f} "
            f"| {_downstream_cell(t)} |"
        )
    return [*lines, ""]


def render(runs: dict[str, dict]) -> str:
    # the reference machine: that of the plain backbones measured on a CPU build of torch
    cpu = [r for r in runs.values() if r.get("torch", "").endswith("+cpu")]
    reference = next((r for r in cpu if "backbone" in r and "test" in r), cpu[0] if cpu else {})
    machine = reference.get("machine", "unknown")
    lines = [
        "# Measured results",
        "",
        "Generated by `python benchmarks/results_page.py` from benchmarks/results/*.json; do not "
        "edit by hand. Machine: 2-core Intel Xeon CPU (AMX/AVX512-BF16), 24 GiB, no GPU, "
        f"Python 3.11, torch {reference.get('torch', '?')} ({machine}), except where a row or a "
        "section names another machine. "
        "Protocol everywhere: 5-core, chronological leave-one-out, full ranking "
        "over all items; seen items are not masked except in columns that say so.",
        "",
        *_backbones(runs, machine),
    ]
    by_dataset: dict[str, list[dict]] = {}
    for name, figures in runs.items():
        if name.startswith("transmission-"):
            by_dataset.setdefault(figures["dataset"], []).append(figures)
    for group in by_dataset.values():
        if len(group) > 1:
            lines += _transmission_overview(group)
    for name, figures in runs.items():
        if name.startswith("experiment-"):
            lines += _experiment(figures, machine)
        elif name.startswith("sft-efficiency-"):
            lines += _sft(figures)
        elif name.startswith("augment-throughput-"):
            lines += _augment(figures)
        elif name.startswith("category-probe-"):
            lines += _probe(figures)
        elif name.startswith("fit-gap-"):
            lines += _fit_gap(figures)
        elif name.startswith("transmission-"):
            lines += _transmission(figures)
        elif name.startswith("compare-"):
            lines += _compare(figures, machine)
        elif name.startswith("speed-"):
            lines += _speed(figures, machine)
        elif name.startswith("patience-"):
            lines += _patience(figures, machine)
        elif name.startswith("epoch-profile-"):
            lines += _epoch_profile(figures, machine)
    lines += _fusion_init([f for name, f in runs.items() if name.startswith("fusion-init-")])
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    with atomic_path(PAGE) as tmp:
        tmp.write_text(render(_load()))
    print(f"wrote {PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
