import importlib.util
import subprocess
import sys
from pathlib import Path

from tslrec.evaluation.formatting import (
    cutoffs,
    mean_std,
    percent_change,
    signed_percent,
    summary_table,
)


def test_relative_change_is_rounded_to_a_tenth_of_a_percent_with_its_sign():
    assert percent_change(0.0698, 0.0723) == "+3.6%"  # 0.0025 / 0.0698 = 3.58%
    assert percent_change(0.0682, 0.0650) == "-4.7%"  # -0.0032 / 0.0682 = -4.69%
    assert percent_change(0.0, 0.1) == "+0.0%"  # undefined from zero: shown as no change
    assert signed_percent(2.04) == "+2.0%"


def test_cutoffs_are_the_distinct_ks_in_ascending_order():
    assert cutoffs({"HR@20": 1.0, "NDCG@5": 0.2, "HR@5": 0.3, "loss": 2.0}) == [5, 20]


def test_a_lone_seed_shows_no_spread():
    assert mean_std(0.12345, 0.01, 3) == "0.1235 ± 0.0100"
    assert mean_std(0.5, 0.0, 1) == "0.5000"


def test_the_cli_and_the_results_page_start_without_torch():
    """`tslrec --help` and the results page (formatting, JSON writing) must not pay for torch."""
    modules = "tslrec.cli, tslrec.evaluation.formatting, tslrec.io"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_summary_row_reads_as_the_numbers_it_holds():
    header, rule, line = summary_table([_summary_row()]).splitlines()
    assert header.startswith("| dataset | categories.k | backbone | seeds | plain NDCG@10 |")
    assert rule == "|---|---|---|" + "---:|" * 9
    assert line == (
        "| d | 16 | sasrec | 2 | 0.1000 ± 0.0100 | 0.1100 ± 0.0200 | +10.0% "
        "| 0.2000 ± 0.0100 | 0.1900 ± 0.0200 | -5.0% | 0.0123 | 0.5 |"
    )


def test_an_experiment_from_another_machine_says_which_on_the_results_page():
    """Figures from a CPU without AMX differ in speed and in their random streams."""
    page = _results_page()
    experiment = {"experiment": "e", "llm": "m", "mode": "fusion", "seeds": [42], "grid": None}
    experiment |= {"summary": [_summary_row()], "stages": []}
    reference = "x86_64, 2 threads"

    def heading(figures: dict) -> str:
        return page._experiment(figures, reference)[0]

    assert heading(experiment) == "## TSLRec vs plain: experiment e (m, fusion, seeds [42])"
    assert heading(experiment | {"machine": reference}) == heading(experiment)
    assert heading(experiment | {"machine": "x86_64 AMD EPYC, 2 threads"}) == (
        "## TSLRec vs plain: experiment e (m, fusion, seeds [42]) (on x86_64 AMD EPYC, 2 threads)"
    )


def _results_page():
    spec = importlib.util.spec_from_file_location(
        "results_page", Path(__file__).parents[1] / "benchmarks" / "results_page.py"
    )
    page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page)
    return page


def test_the_transmission_overview_shows_the_enhanced_backbone_where_one_was_trained():
    def run(overrides: list[str], top1: float, downstream: dict | None = None) -> dict:
        probes = {"stage0_sasrec": {"linear": 0.892}, "stage2_hidden": {"linear": 0.5}}
        t = {"dataset": "d", "prompt_rendering": "id_token", "overrides": overrides}
        t |= {"sft": {"batch_size": 8}, "sft_samples": 20, "sft_seconds_per_epoch": [10.0, 12.0]}
        t["transmission"] = {"head_one_item": {"top1": top1, "top5": 0.9}, "probes": probes}
        return t | ({"downstream": downstream} if downstream else {})

    figures = {"backbone": "sasrec", "mode": "fusion"}
    figures |= {"plain": {"valid_NDCG@10": 0.08114, "test_NDCG@10": 0.06712}}
    figures |= {"enhanced": {"valid_NDCG@10": 0.08171, "test_NDCG@10": 0.06749}}
    lines = _results_page()._transmission_overview([run(["x=1"], 0.5, figures), run([], 0.194)])
    assert "plain sasrec: 0.0811 / 0.0671." in lines[4]
    rows = [line for line in lines if line.startswith("| id_token")]
    # no overrides sort first; 20 samples in batches of 8 are 3 steps an epoch, 2 epochs
    assert rows[0] == "| id_token | defaults | 89.2% | 6 | 19.4% | 90.0% | 50.0% |  | 11 |  |"
    assert rows[1].endswith("| 11 | 0.0817 / 0.0675 |")


def _summary_row() -> dict:
    row = {"dataset": "d", "grid_key": "categories.k", "grid_value": "16", "backbone": "sasrec"}
    row |= {"seeds": 2, "paired_ttest_p": 0.0123, "paired_wilcoxon_p": 0.5}
    for metric, plain, enhanced in (("NDCG@10", 0.1, 0.11), ("HR@10", 0.2, 0.19)):
        row |= {f"plain_{metric}_mean": plain, f"plain_{metric}_std": 0.01}
        row |= {f"enhanced_{metric}_mean": enhanced, f"enhanced_{metric}_std": 0.02}
        row[f"change_{metric}_%"] = (enhanced / plain - 1) * 100
    return row


def test_the_tail_and_sampled_views_get_a_row_each_under_the_main_table():
    row = _summary_row()
    row |= {"paired_tail_ttest_p": 0.04, "paired_tail_wilcoxon_p": 0.06, "paired_tail_users": 7}
    for metric, plain, enhanced in (("tail_NDCG@10", 0.02, 0.03), ("tail_HR@10", 0.05, 0.04)):
        row |= {f"plain_{metric}_mean": plain, f"plain_{metric}_std": 0.001}
        row |= {f"enhanced_{metric}_mean": enhanced, f"enhanced_{metric}_std": 0.002}
        row[f"change_{metric}_%"] = (enhanced / plain - 1) * 100
    main, views = summary_table([row]).split("\n\n")
    assert main == summary_table([_summary_row()])
    header, rule, line = views.splitlines()
    assert header.startswith("| dataset | backbone | view | users | plain NDCG@10 |")
    assert rule == "|---|---|---|" + "---:|" * 9
    assert line == (
        "| d | sasrec | tail targets | 7 | 0.0200 ± 0.0010 | 0.0300 ± 0.0020 | +50.0% "
        "| 0.0500 ± 0.0010 | 0.0400 ± 0.0020 | -20.0% | 0.04 | 0.06 |"
    )
