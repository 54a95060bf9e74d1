"""``ser compare A B``: ΔCCC of two models on the same clips, with a paired interval."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, emit, fail, note

if TYPE_CHECKING:
    from ser_pipeline.evaluate import ModelComparison


@app.command("compare")
def compare_command(
    model_a: Annotated[str, typer.Argument(
        metavar="A", help="Run id, ONNX file or folder, or registry://name[@version].")],
    model_b: Annotated[str, typer.Argument(
        metavar="B", help="The model A is compared with (same forms).")],
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Corpus to compare on (repeat; default: A's training corpora).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split to compare on.")] = "dev",
    split_name: Annotated[str | None, typer.Option(
        "--split-name", help="Split definition when a corpus has several.")] = None,
    reference: Annotated[str, typer.Option(
        "--reference", help="teacher or human: the labels CCC is computed against.")
    ] = "teacher",
    teacher: Annotated[str | None, typer.Option(
        "--teacher", help="Reference teacher id (default: A's teacher, else B's).")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1,
                                         help="ONNX Runtime threads per session.")] = 1,
    lake: common.LakeOption = None,
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """ΔCCC = CCC(A) − CCC(B) per dimension with a paired bootstrap interval (the same
    resampled speakers for both) and a verdict: better, worse or not distinguishable.

    Missing predictions are computed and stored in the lake first; the comparison is
    stored in the lake's comparisons table (ser report model_comparison after ser db
    build).
    """
    from ser_pipeline.evaluate import EvaluateError, compare
    from ser_pipeline.lake import Lake
    from ser_pipeline.registry import RegistryError

    if reference not in ("teacher", "human"):
        fail(f"--reference {reference!r}: use teacher or human")
    settings = common.settings_for(lake, registry)
    try:
        report = compare(Lake.open(settings=settings), model_a, model_b, corpora=corpus or None,
                         split=split, split_name=split_name, reference=reference,
                         teacher_id=teacher, threads=threads, settings=settings)
    except (EvaluateError, RegistryError, ValueError, FileNotFoundError) as error:
        fail(str(error).splitlines()[0])
    if as_json:
        emit(report.to_dict(), title="compare", as_json=True)
        return
    for notice in report.notices:
        note(notice)
    for comparison in report.comparisons:
        console.print(comparison_table(comparison))
        console.print(escape(verdict_line(comparison)), highlight=False, soft_wrap=True)


def verdict_line(comparison: ModelComparison) -> str:
    """The one-line verdict: which model is better, by how much, on what evidence."""
    result = comparison.comparison
    overall, r = result.overall, result.resampling
    head = {"better": f"{result.candidate} is better than {result.baseline}",
            "worse": f"{result.candidate} is worse than {result.baseline}",
            "not distinguishable": f"{result.candidate} and {result.baseline} are not "
                                   "distinguishable"}[overall.verdict]
    return (f"verdict: {head} on {comparison.corpus}/{comparison.split} vs "
            f"{comparison.reference} (mean ΔCCC {_signed(overall.delta.value)} "
            f"[{_signed(overall.delta.lo)}, {_signed(overall.delta.hi)}], "
            f"{r.level:.0%} paired bootstrap over {r.n_units} {r.unit}s, {overall.n} clips)")


def _signed(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:+.3f}"


def _plain(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def comparison_table(comparison: ModelComparison) -> Table:
    """CCC of A and B and ΔCCC with its interval and verdict, per dimension."""
    result = comparison.comparison
    table = Table(title=escape(f"A = {result.candidate}  vs  B = {result.baseline}"),
                  caption=escape(f"{comparison.corpus}/{comparison.split} against "
                                 f"{comparison.reference} labels"
                                 + (f" ({comparison.teacher_id})"
                                    if comparison.reference == "teacher" else "")),
                  header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("dimension", no_wrap=True)
    table.add_column("CCC A", justify="right", no_wrap=True)
    table.add_column("CCC B", justify="right", no_wrap=True)
    table.add_column("ΔCCC [interval]", justify="right", no_wrap=True)
    table.add_column("verdict")
    for entry in (*result.dimensions, result.overall):
        delta = entry.delta
        add_plain_row(table, entry.dimension, _plain(entry.ccc_candidate),
                      _plain(entry.ccc_baseline),
                      f"{_signed(delta.value)} [{_signed(delta.lo)}, {_signed(delta.hi)}]",
                      entry.verdict)
    return table
