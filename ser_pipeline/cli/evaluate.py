"""``ser evaluate``: score a training run or an ONNX model with CCC, Pearson r and MAE."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, emit, fail, note


@app.command("evaluate")
def evaluate_command(
    run: Annotated[str | None, typer.Option("--run", help="Training run id (its best "
                                            "checkpoint).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="ONNX file, folder with "
                                              "model.onnx, or registry://name[@version|latest][#int8|#fp32]."
                                              )] = None,
    corpus: Annotated[list[str] | None, typer.Option("--corpus", help="Corpus to evaluate "
                                                     "(repeat; default: the run's corpora).")
                      ] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Split to score (repeat;"
                                                    " default dev and test).")] = None,
    split_name: Annotated[str | None, typer.Option("--split-name", help="Split definition "
                                                   "when a corpus has several.")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="Score against this "
                                                "teacher id (default: the model's).")] = None,
    batch_size: Annotated[int, typer.Option(
        help="Most equal-length windows of one clip per model call.")] = 16,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="ONNX Runtime threads per session (default 1, the paper's "
        "one-core setting; shards run in parallel).")] = 1,
    lake: common.LakeOption = None,
    registry: common.RegistryOption = None,
    engine: common.EngineOption = "prefect",
    as_json: common.JsonOption = False,
) -> None:
    """Evaluate a model on dev/test clips; writes metrics/ and predictions/ to the lake."""
    from ser_pipeline.evaluate import EvaluateError

    common.check_engine(engine)
    if (run is None) == (model is None):
        fail("give exactly one of --run RUN_ID or --model PATH_OR_REGISTRY_URI")
    settings = common.settings_for(lake, registry)
    splits = tuple(split or ("dev", "test"))
    try:
        if engine == "local":
            from ser_pipeline.evaluate import evaluate
            from ser_pipeline.lake import Lake

            summary = evaluate(Lake.open(settings=settings), run_id=run, model=model,
                               corpora=corpus or None, splits=splits, split_name=split_name,
                               teacher_id=teacher, batch_size=batch_size, threads=threads,
                               settings=settings)
        else:
            from flows.evaluate import evaluate_flow

            flow_summary = evaluate_flow(run_ids=[run] if run else None,
                                         models=[model] if model else None,
                                         corpora=corpus or None, splits=list(splits),
                                         split_name=split_name, teacher_id=teacher,
                                         batch_size=batch_size, threads=threads,
                                         lake=settings.lake,
                                         registry=settings.registry)
            summary = flow_summary["evaluations"][0]
    except (EvaluateError, ValueError, FileNotFoundError, RuntimeError) as error:
        fail(str(error).splitlines()[0])
    if as_json:
        emit(summary, title="evaluate", as_json=True)
        return
    for notice in summary.get("notices", []):
        note(notice)
    console.print(results_table(summary))
    if summary.get("fairness"):
        console.print(fairness_table(summary))
    brief = {k: summary[k] for k in ("model", "student", "teacher_id", "model_params",
                                     "model_bytes", "clips", "predicted",
                                     "reused_predictions", "quarantined",
                                     "metrics_rows_written")}
    emit(brief, title="evaluate", as_json=False)


def _value(value: float | None, lo: float | None, hi: float | None, *,
           signed: bool = False, sep: str = " ") -> str:
    """``0.812 [0.700, 0.880]`` (``sep="\\n"``: the interval on a line of its own)."""
    form = "{:+.3f}" if signed else "{:.3f}"
    if value is None:
        return "-"
    text = form.format(value)
    if lo is not None and hi is not None:
        text += f"{sep}[{form.format(lo)}, {form.format(hi)}]"
    return text


def _group_label(row: dict, *, teachers: int) -> list[str]:
    """The lines that name one corpus/split/reference group, one per table row."""
    lines = [f"{row['corpus']} {row['split']}", f"vs {row['reference']}"]
    if teachers > 1:
        lines.append(str(row["teacher_id"] or "-"))
    return lines


def results_table(summary: dict) -> Table:
    """CCC per corpus/split/reference, one row per dimension: the global CCC over all
    clips (the paper's figure) and, where speakers are known, the mean of per-speaker
    CCCs, each with its interval. Fits 80 columns."""
    results = summary["results"]
    teachers = {row["teacher_id"] for row in results}
    level = next((row["ci_level"] for row in results if row.get("ci_level")), None)
    title = f"CCC of {summary['model']}"
    if len(teachers) == 1 and None not in teachers:
        title += f" (teacher {next(iter(teachers))})"
    caption = ((f"[lo, hi]: {level:.0%} percentile bootstrap interval" if level
                else "no intervals")
               + "; global: all clips pooled (the paper's figure, the one leaderboards sort "
               "by); speaker mean: mean of per-speaker CCCs")
    table = Table(title=escape(title), caption=escape(caption), header_style="bold",
                  box=box.SIMPLE_HEAD)
    table.add_column("data")
    table.add_column("dimension", no_wrap=True)
    table.add_column("global", justify="right", no_wrap=True)
    table.add_column("speaker mean", justify="right", no_wrap=True)
    for row in results:
        label = _group_label(row, teachers=len(teachers)) + [
            f"{row['n']} clips", f"{row['ci_units']} speakers"
            if row.get("ci_unit") == "speaker" else "(clips resampled)"]
        label = label[:3] + [" ".join(label[3:])]
        has_speakers = row.get("speakers") is not None
        for i, dimension in enumerate(("arousal", "dominance", "valence", "mean")):
            cells = []
            for prefix in ("ccc", "speaker_ccc"):
                if prefix == "speaker_ccc" and not has_speakers:
                    cells.append("no speaker ids" if i == 0 else "")
                    continue
                cells.append(_value(row.get(f"{prefix}_{dimension}"),
                                    row.get(f"{prefix}_{dimension}_lo"),
                                    row.get(f"{prefix}_{dimension}_hi")))
            add_plain_row(table, label[i] if i < len(label) else "", dimension, *cells)
        table.add_section()
    return table


def fairness_table(summary: dict) -> Table:
    """CCC per gender group with its interval, and the largest gap (best minus worst
    group) with its interval, one row per dimension. Fits 80 columns with two groups."""
    table = Table(title=escape(f"CCC per group of {summary['model']}"), header_style="bold",
                  box=box.SIMPLE_HEAD,
                  caption="gap: CCC of the best group minus the worst, with its interval")
    entries = summary.get("fairness", [])
    groups = list(dict.fromkeys(g["group"] for e in entries for g in e["groups"]))
    attribute = entries[0]["attribute"] if entries else "group"
    table.add_column("data")
    table.add_column("dimension", no_wrap=True)
    for group in groups:
        table.add_column(f"{attribute}={group}", justify="right", no_wrap=True)
    table.add_column("largest gap", justify="right", no_wrap=True)
    for entry in entries:
        by_group = {g["group"]: g for g in entry["groups"]}
        gaps = {gap["dimension"]: gap for gap in entry["gaps"]}
        label = _group_label(entry, teachers=1) + [
            ", ".join(f"{g['group']} {g['n']}" for g in entry["groups"])]
        for i, dimension in enumerate(("arousal", "dominance", "valence")):
            cells = []
            for group in groups:
                g = by_group.get(group)
                cells.append("-" if g is None else _value(
                    g[f"ccc_{dimension}"], g[f"ccc_{dimension}_lo"], g[f"ccc_{dimension}_hi"],
                    sep="\n"))
            gap = gaps.get(dimension)
            cells.append("-" if gap is None else _value(
                gap["gap"], gap["gap_lo"], gap["gap_hi"], signed=True, sep="\n")
                + f"\n{gap['best_group']} - {gap['worst_group']}")
            add_plain_row(table, label[i] if i < len(label) else "", dimension, *cells)
        table.add_section()
    return table
