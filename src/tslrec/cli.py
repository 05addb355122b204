"""The `tslrec` command line: thin wrappers over the pipeline, one command per user task."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tslrec.config import Config, check_backbone, load_config
from tslrec.errors import TslrecError, TslrecWarning, warn
from tslrec.evaluation.formatting import cutoffs
from tslrec.io import require_writable_dir

app = typer.Typer(help="TSLRec: LLM-enhanced sequential recommendation.", no_args_is_help=True)
data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# rich cuts tables to 80 columns when output goes to a file or pipe: logs get the whole table.
# Under `accelerate launch` or `torchrun` (which set RANK), only the first process reports.
console = Console(
    width=None if sys.stdout.isatty() else 200, quiet=int(os.environ.get("RANK", "0")) > 0
)
err_console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a key, e.g. train.lr=0.002.")
]
BackboneOption = Annotated[
    str | None, typer.Option("--backbone", "-b", help="sasrec, gru4rec or bert4rec.")
]


_OPTIONS = {"debug": False}  # the global options of the invocation under way


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="TSLREC_DEBUG", help="On failure, show the Python traceback too."
        ),
    ] = False,
) -> None:
    """Options for every command, set anew by each invocation (tests invoke many in one
    process)."""
    _OPTIONS["debug"] = debug


# typer's own exits and usage errors, which it reports itself (its click may be vendored)
_CLI_EXCEPTIONS = (
    typer.Exit,
    typer.Abort,
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)


def _describe(err: Exception) -> str:
    """One line for any exception: ours say what to fix; the others at least name the file or
    what ran out, and point at --debug, because a traceback is no message for a user."""
    if isinstance(err, TslrecError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    if isinstance(err, RecursionError):
        return "input nested too deeply to process (Python's recursion limit)"
    if isinstance(err, MemoryError):
        return "out of memory"
    return (
        f"unexpected {type(err).__name__}: {err}; rerun with --debug for the traceback "
        "and please report it"
    )


def _show_warning(
    original: Callable[..., None],
    shown: set[str],
    message: Warning | str,
    category: type[Warning],
    *args: Any,
) -> None:
    """Our warnings as one `warning:` line each, once per command (a pipeline checks the same
    setting for every model it trains); other libraries' as Python prints them."""
    if issubclass(category, TslrecWarning):
        if str(message) not in shown:
            shown.add(str(message))
            err_console.print(
                f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
            )
    else:
        original(message, category, *args)


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one place a command's failure becomes a message: every exception that escapes a
    command prints one `error:` line and exits 2 (its traceback only under --debug); click's
    own usage errors and exits pass through."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", TslrecWarning)
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning, set())
            try:
                return command(*args, **kwargs)
            except _CLI_EXCEPTIONS:
                raise
            except Exception as err:
                if _OPTIONS["debug"]:
                    traceback.print_exc()
                message = escape(_describe(err))
                err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None

    return wrapper


def _config(config: Path | None, overrides: list[str] | None) -> Config:
    """The config, with its output directory known to be writable before any work starts."""
    cfg = load_config(config, overrides)
    require_writable_dir(cfg.output_dir, "output_dir")
    return cfg


def _backbone_config(
    config: Path | None, overrides: list[str] | None, backbone: str | None
) -> Config:
    """The config one backbone trains under (the config's own model when none is named)."""
    check_backbone(backbone, "--backbone {name!r}: expected one of {expected}")
    cfg = _config(config, overrides)
    return cfg.for_backbone(backbone or cfg.model.name)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    ks = cutoffs(metrics)
    table = Table(title=title)
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for name in ("HR", "NDCG", "MRR"):
        table.add_row(name, *(f"{metrics[f'{name}@{k}']:.4f}" for k in ks))
    console.print(table)


@data_app.command("prepare")
@_friendly_errors
def data_prepare(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Read, filter, id-map and split the dataset; save it as Parquet + a JSON manifest."""
    from tslrec.pipeline.train import dataset_dir, load_dataset

    cfg = _config(config, set_)
    dataset = load_dataset(cfg)
    console.print(f"prepared [bold]{cfg.data.name}[/] in {dataset_dir(cfg)}")
    console.print_json(json.dumps(dataset.stats()))


@data_app.command("stats")
@_friendly_errors
def data_stats(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Users, items, interactions, density and the sequence-length distribution."""
    from tslrec.pipeline.train import load_dataset

    dataset = load_dataset(_config(config, set_))
    table = Table(title=dataset.manifest["source"])
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in dataset.stats().items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
@_friendly_errors
def train(
    config: ConfigOption = None, set_: SetOption = None, backbone: BackboneOption = None
) -> None:
    """Train a backbone with early stopping, then evaluate it on the test split."""
    from tslrec.pipeline.train import load_dataset, run_dir, train_and_evaluate

    cfg = _backbone_config(config, set_, backbone)
    record = train_and_evaluate(cfg, load_dataset(cfg))
    _print_metrics(
        f"{cfg.model.name} on {cfg.data.name}: test ({cfg.eval.describe()})", record.test
    )
    console.print(
        f"best epoch {record.best_epoch}, {record.seconds_per_epoch:.1f} s/epoch, "
        f"results in {run_dir(cfg)}"
    )


@app.command()
@_friendly_errors
def evaluate(
    config: ConfigOption = None,
    set_: SetOption = None,
    backbone: BackboneOption = None,
    split: Annotated[str, typer.Option(help="valid or test.")] = "test",
) -> None:
    """Evaluate a trained backbone (full ranking or sampled, seen items masked or not)."""
    from tslrec.evaluation.evaluator import check_protocol
    from tslrec.evaluation.evaluator import evaluate as run_evaluation
    from tslrec.pipeline.train import load_dataset, load_trained

    if split not in ("valid", "test"):
        raise TslrecError(f"--split must be 'valid' or 'test', got '{split}'")
    cfg = _backbone_config(config, set_, backbone)
    dataset = load_dataset(cfg)
    check_protocol(dataset, cfg.eval)
    result = run_evaluation(load_trained(cfg, dataset), dataset, split, cfg.eval)  # type: ignore[arg-type]
    _print_metrics(
        f"{cfg.model.name} on {cfg.data.name}: {split} ({cfg.eval.describe()})", result.metrics
    )


@app.command()
@_friendly_errors
def recommend(
    config: ConfigOption = None,
    set_: SetOption = None,
    backbone: BackboneOption = None,
    user: Annotated[str | None, typer.Option(help="A known user id.")] = None,
    items: Annotated[
        str | None, typer.Option(help="A new user's item ids, oldest first, comma-separated.")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items.")] = 10,
) -> None:
    """Top-k items for a known user, or for a new user's raw item sequence."""
    from tslrec.pipeline.train import load_dataset, load_trained
    from tslrec.recommender import Recommender

    if (user is None) == (items is None):
        raise TslrecError("give exactly one of --user ID or --items ID1,ID2,...")
    if items is not None and not items.replace(",", "").strip():
        raise TslrecError(f"--items {items!r}: no item ids; expected ID1,ID2,...")
    cfg = _backbone_config(config, set_, backbone)
    dataset = load_dataset(cfg)
    model = Recommender.from_model(load_trained(cfg, dataset), dataset, cfg)
    if user is not None:
        top = model.recommend(user, k)
    else:
        sequence = [i.strip() for i in items.split(",") if i.strip()]  # type: ignore[union-attr]
        top = model.recommend(sequences=[sequence], k=k)
    table = Table(title=f"top {k} for {'user ' + user if user else 'the given sequence'}")
    for column in ("rank", "item id", "title", "score"):
        table.add_column(column)
    if top.is_empty():
        raise TslrecError(
            f"every one of the {dataset.num_items} items is in this history: none left to recommend"
        )
    if top.height < k:
        warn(f"-k {k}: only {top.height} items are not in this history; listing those")
    for row in top.iter_rows(named=True):
        table.add_row(str(row["rank"]), row["item"], row["title"] or "", f"{row['score']:.3f}")
    console.print(table)


@app.command()
@_friendly_errors
def run(config: ConfigOption = None, set_: SetOption = None) -> None:
    """The whole TSLRec pipeline: stage 0, 1, 2 and plain vs enhanced backbones (cached)."""
    from rich.markdown import Markdown

    from tslrec.pipeline.tslrec import results_markdown, run_tslrec

    cfg = _config(config, set_)
    results = run_tslrec(cfg)
    console.print(Markdown(results_markdown(results)))
    console.print(f"results in {cfg.output_dir / 'results.json'} and results.md")


@app.command()
@_friendly_errors
def compare(
    config: ConfigOption = None,
    set_: SetOption = None,
    tables: Annotated[
        str, typer.Option(help="Comma-separated: tslrec, llm-raw, random, categories, instance.")
    ] = "tslrec,llm-raw,random,categories",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "42,43,44",
    backbones: Annotated[
        str | None, typer.Option(help="Comma-separated backbones (default: the config's).")
    ] = None,
) -> None:
    """Is the LLM worth it? TSLRec's table against plain and against controls of its shape."""
    from rich.markdown import Markdown

    from tslrec.evaluation.formatting import compare_table
    from tslrec.llm.controls import TABLES
    from tslrec.pipeline.compare import compare_experiment, run_compare

    if config is None:
        raise TslrecError("--config is required: the pipeline config to compare tables on")
    names = _comma_list(tables, "--tables", TABLES)
    chosen = _comma_list(backbones, "--backbones", None) if backbones else None
    for backbone in chosen or []:
        check_backbone(backbone, "--backbones: unknown {name!r}; expected one of {expected}")
    try:
        seed_list = [int(s) for s in _comma_list(seeds, "--seeds", None)]
    except ValueError:
        raise TslrecError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    exp = compare_experiment(config, names, seed_list, chosen, set_ or [])
    require_writable_dir(exp.output_dir, "output_dir")
    rows, sentence = run_compare(exp)
    console.print(Markdown(compare_table(rows)))
    console.print(sentence)
    console.print(f"table and verdict in {exp.output_dir / exp.name}/compare.md (and .json)")


def _comma_list(text: str, option: str, allowed: tuple[str, ...] | None) -> list[str]:
    """A comma-separated option's values, each checked against `allowed` when given."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise TslrecError(f"{option} needs at least one value")
    unknown = [v for v in values if allowed is not None and v not in allowed]
    if unknown:
        raise TslrecError(f"{option}: unknown {unknown[0]!r}; expected one of {', '.join(allowed)}")
    return values


@app.command()
@_friendly_errors
def experiment(
    config: Annotated[Path, typer.Option("--config", "-c", help="configs/experiments/NAME.yaml")],
    set_: SetOption = None,
    seed: Annotated[
        list[int] | None,
        typer.Option(
            "--seed", help="Only this of the file's seeds (repeatable); tables in NAME-seeds-N/."
        ),
    ] = None,
) -> None:
    """A grid of runs (configs x grid values x seeds), plain vs enhanced, into one tidy table."""
    from rich.markdown import Markdown

    from tslrec.config import load_experiment, only_seeds
    from tslrec.layout import EXPERIMENT_RUNS, EXPERIMENT_SUMMARY_MD
    from tslrec.pipeline.experiment import run_experiment

    exp = load_experiment(config, set_)
    if seed:
        exp = only_seeds(exp, seed)
    require_writable_dir(exp.output_dir, "output_dir")
    results = run_experiment(exp, progress=True)
    out = exp.output_dir / exp.name
    console.print(Markdown((out / EXPERIMENT_SUMMARY_MD).read_text()))  # by run_experiment
    console.print(
        f"{len(results)} runs in {out / EXPERIMENT_RUNS} (and .csv), "
        f"summary in {EXPERIMENT_SUMMARY_MD}"
    )


@app.command()
@_friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished `tslrec run` output directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default RUN_DIR/report).")
    ] = None,
) -> None:
    """A self-contained HTML page (and PNGs): results, curves, categories, buckets, costs."""
    from tslrec.reporting import write_report

    page = write_report(run_dir, out)
    console.print(f"report in {page} (figures as PNG next to it)")


if __name__ == "__main__":
    app()
