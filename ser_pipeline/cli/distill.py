"""``ser distill``: the whole pipeline as one Prefect flow run (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ser_pipeline.cli.common import (
    JsonOption,
    LakeOption,
    RegistryOption,
    add_plain_row,
    app,
    console,
    emit,
    fail,
)
from ser_pipeline.distill import DEFAULT_MAX_STEPS


@app.command("distill")
def distill_command(
    sources: Annotated[list[str] | None, typer.Argument(
        help="Corpus folders or s3:// prefixes. None: the embedded demo corpus.")] = None,
    corpus: Annotated[str, typer.Option(help="Corpus name in the lake.")] = "demo",
    recipe: Annotated[str, typer.Option(help="Ingest recipe for the sources.")] = "csv",
    teacher: Annotated[str, typer.Option(
        help="Teacher spec (hf:, ensemble:, onnx:) or 'demo' (tiny, fine-tuned here).")] = "demo",
    student: Annotated[list[str] | None, typer.Option(
        "--student", help="Student to train (repeatable). Default: wav2small, mobilenetv3-s.",
    )] = None,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps per student.")] = (
        DEFAULT_MAX_STEPS),
    seed: Annotated[int, typer.Option(help="Seed for splits, init and data order.")] = 0,
    min_ccc: Annotated[float, typer.Option(
        help="Publish gate: minimum mean dev CCC against the teacher.")] = 0.3,
    name: Annotated[str, typer.Option(
        "--name", help="Registry name prefix (<name>-<student>).")] = "ser",
    db: Annotated[str | None, typer.Option(help="Analyst DuckDB file.")] = None,
    report_html: Annotated[str, typer.Option(
        "--report-html", help="HTML report to write ('' for none).")] = "report.html",
    demo_dir: Annotated[str, typer.Option(help="Where the demo corpus/teacher live.")] = "demo",
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", envvar="SER_DASK_ADDRESS", help="Dask scheduler for shards/tasks.",
    )] = None,
    train_device: Annotated[str, typer.Option(
        "--train-device", help="Where students train: cpu, auto, cuda (one per GPU), cuda:N.",
    )] = "cpu",
    train_workers: Annotated[int, typer.Option(
        "--train-workers", min=0, help="Data worker processes per training run.")] = 0,
    lake: LakeOption = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest, label, train, evaluate, publish and refresh the analyst DB in one flow run."""
    from flows.distill import distill_flow, stage_counts
    from ser_pipeline.distill import DistillError
    from ser_pipeline.teacher import TeacherError
    from ser_pipeline.train import TrainInputError
    from ser_pipeline.train.device import resolve_device

    try:
        if not dask_address:  # fail before ingest/label, not after them
            resolve_device(train_device)
        summary = distill_flow(
            sources=sources or None, corpus=corpus, recipe=recipe, teacher=teacher,
            students=student or None, max_steps=max_steps, seed=seed, min_ccc=min_ccc,
            publish_name=name, lake=lake, registry=registry, db=db,
            report_html=report_html or None, demo_dir=demo_dir, dask_address=dask_address,
            train_device=train_device, train_workers=train_workers,
        )
    except (DistillError, TeacherError, TrainInputError) as error:
        fail(str(error))
    predictions, story = [], []
    if not sources:
        predictions = _demo_predictions(summary, demo_dir=demo_dir, registry=registry)
        summary["demo_predictions"] = predictions
        story = _demo_story(corpus, db=db, lake=lake)
        summary["story"] = story
    if as_json:
        emit(summary, title="distill", as_json=True)
        return
    emit(stage_counts(summary), title="Distillation: new work per stage", as_json=False)
    _print_outcomes(summary)
    _print_leaderboard(summary, db=db, lake=lake)
    if predictions:
        table = Table(title="ser predict on two demo files")
        for column in ("file", "arousal", "dominance", "valence"):
            table.add_column(column)
        for row in predictions:
            add_plain_row(table, Path(row["file"]).name,
                          *(f"{row.get(k, float('nan')):.3f}" for k in ("arousal", "dominance",
                                                                        "valence")))
        console.print(table)
    if story:
        console.print(Text("The paper's story, measured", style="bold"))
        for line in story:
            console.print(Text(line))
    if summary.get("report_html"):
        console.print(Text(f"report: {summary['report_html']}"))


def _print_outcomes(summary: dict) -> None:
    from ser_pipeline.distill import publish_outcome

    table = Table(title="Students")
    for column in ("student", "run", "published", "why"):
        table.add_column(column, overflow="fold")
    for student, run_id in summary["runs"].items():
        outcome = summary["published"].get(student, {})
        version = f" v{outcome['version']}" if outcome.get("version") else ""
        if outcome.get("published"):
            state = publish_outcome(outcome)
        else:
            state = f"earlier{version}" if outcome.get("version") else "no"
        add_plain_row(table, student, run_id, state, str(outcome.get("reason", "")))
    console.print(table)


def _print_leaderboard(summary: dict, *, db: str | None, lake: str | None) -> None:
    from ser_pipeline import report_tables
    from ser_pipeline.config import get_settings
    from ser_pipeline.reports import run_report, to_records

    settings = get_settings(lake=lake, db=db)
    # The demo corpus has no test split; dev is what the gate and the report use.
    columns, rows = run_report(settings.db, "leaderboard", params={"split": "dev"},
                               settings=settings)
    console.print(Text(f"Leaderboard: dev CCC ({settings.db})", style="bold"))
    if not rows:
        console.print(Text("no dev metrics yet"))
        return
    layouts = report_tables.leaderboard_layouts(to_records(columns, rows))
    report_tables.print_layout(report_tables.fit(layouts, console.width), console)


def _demo_story(corpus: str, *, db: str | None, lake: str | None) -> list[str]:
    """The demo's closing sentences, on the pool's dev clips (unseen voices and sentences)."""
    from ser_pipeline.config import get_settings
    from ser_pipeline.demo.story import demo_story
    from ser_pipeline.distill import POOL_SUFFIX
    from ser_pipeline.reports import paper_table_records

    settings = get_settings(lake=lake, db=db)
    pool = corpus + POOL_SUFFIX
    records = paper_table_records(settings.db, params={"corpus": pool, "split": "dev"},
                                  settings=settings)
    return demo_story(records, corpus=pool)


def _demo_predictions(summary: dict, *, demo_dir: str, registry: str | None) -> list[dict]:
    """Run the published demo student on two demo files: the last step of ``make demo``."""
    from ser_pipeline.predict import predict_files

    published = [(student, p) for student, p in summary["published"].items()
                 if p.get("name") or p.get("published")]
    if not published:
        return []
    student, outcome = published[0]
    name = outcome.get("name") or f"ser-{student}"
    files = sorted(p for p in (Path(demo_dir) / "corpus").rglob("*")
                   if p.suffix in {".wav", ".flac", ".ogg"})[:2]
    return predict_files(f"registry://{name}@latest", [str(f) for f in files],
                         registry=registry)
