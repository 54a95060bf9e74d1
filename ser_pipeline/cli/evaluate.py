"""``ser evaluate``: score a training run or an ONNX model with CCC, Pearson r and MAE."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ser_pipeline.cli.common import (
    EngineOption,
    JsonOption,
    LakeOption,
    RegistryOption,
    add_plain_row,
    app,
    check_engine,
    console,
    emit,
    fail,
    note,
    settings_for,
)


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
    lake: LakeOption = None,
    registry: RegistryOption = None,
    engine: EngineOption = "prefect",
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on dev/test clips; writes metrics/ and predictions/ to the lake."""
    from ser_pipeline.evaluate import EvaluateError

    check_engine(engine)
    if (run is None) == (model is None):
        fail("give exactly one of --run RUN_ID or --model PATH_OR_REGISTRY_URI")
    settings = settings_for(lake, registry)
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
    brief = {k: summary[k] for k in ("model", "student", "teacher_id", "model_params",
                                     "model_bytes", "clips", "predicted",
                                     "reused_predictions", "quarantined",
                                     "metrics_rows_written")}
    emit(brief, title="evaluate", as_json=False)


def results_table(summary: dict) -> Table:
    """CCC per corpus/split/reference, one column per dimension."""
    table = Table(title=escape(f"CCC of {summary['model']}"), header_style="bold")
    for column in ("corpus", "split", "reference", "teacher", "n", "arousal", "dominance",
                   "valence", "mean"):
        table.add_column(column, justify="right" if column not in ("corpus", "split",
                                                                   "reference", "teacher")
                         else "left")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for row in summary["results"]:
        add_plain_row(table, row["corpus"], row["split"], row["reference"],
                      row["teacher_id"] or "-", str(row["n"]), fmt(row.get("ccc_arousal")),
                      fmt(row.get("ccc_dominance")), fmt(row.get("ccc_valence")),
                      fmt(row.get("ccc_mean")))
    return table
