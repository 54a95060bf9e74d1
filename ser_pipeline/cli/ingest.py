"""``ser ingest``: bring a corpus (local folder or s3:// prefix) into the lake."""

from __future__ import annotations

from typing import Annotated

import typer

from ser_pipeline.cli import common
from ser_pipeline.cli.common import app, emit, fail
from ser_pipeline.recipes import RECIPES


@app.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Corpus root: a local folder or s3://bucket/prefix.")],
    corpus: Annotated[str, typer.Option("--corpus", help="Corpus name recorded on every row.")],
    recipe: Annotated[str, typer.Option(
        "--recipe", help=f"One of: {', '.join(RECIPES)}.")] = "folder",
    lake: common.LakeOption = None,
    as_json: common.JsonOption = False,
    engine: common.EngineOption = "prefect",
    labels: Annotated[str | None, typer.Option(
        "--labels", help="csv recipe: the label sheet, relative to the root (labels.csv).")] = None,
    path_column: Annotated[str | None, typer.Option(
        "--path-column", help="csv recipe: the column with audio paths (path).")] = None,
    label_min: Annotated[float | None, typer.Option(
        "--label-min", help="csv/audformat: the label scale's minimum (csv default 0).")] = None,
    label_max: Annotated[float | None, typer.Option(
        "--label-max", help="csv/audformat: the label scale's maximum (csv default 1).")] = None,
    unlabeled: Annotated[bool, typer.Option(
        "--unlabeled/--labelled-only",
        help="Also ingest audio the label file does not list (the teacher's pool).")] = True,
    max_duration: Annotated[float | None, typer.Option(
        "--max-duration", help="Quarantine files longer than this many seconds "
        "(default $SER_MAX_DURATION_S, 3600).")] = None,
    shard_size: Annotated[int | None, typer.Option(
        "--shard-size", min=1, help="Files per shard task (default $SER_SHARD_SIZE).")] = None,
    max_workers: Annotated[int | None, typer.Option(
        "--max-workers", min=1, help="Concurrent shards (default $SER_MAX_WORKERS).")] = None,
) -> None:
    """Decode, resample to 16 kHz mono FLAC and store a corpus in the lake (incremental)."""
    from ser_pipeline.recipes import RecipeError
    from ser_pipeline.storage import StorageError

    common.check_engine(engine)
    if recipe not in RECIPES:
        fail(f"unknown --recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    settings = common.settings_for(lake, max_duration_s=max_duration, shard_size=shard_size,
                                   max_workers=max_workers)
    options = {"labels": labels, "path_column": path_column, "label_min": label_min,
               "label_max": label_max}
    if not unlabeled:
        options["include_unlabeled"] = False
    options = {k: v for k, v in options.items() if v is not None}
    try:
        if engine == "prefect":
            from flows.common import task_runner_for
            from flows.ingest import ingest_flow

            run = ingest_flow.with_options(task_runner=task_runner_for(settings))
            summary = run(source=source, corpus=corpus, recipe=recipe, lake=settings.lake,
                          recipe_options=options, max_duration_s=max_duration,
                          shard_size=shard_size)
        else:
            from ser_pipeline.ingest import ingest
            from ser_pipeline.lake import Lake

            summary = ingest(Lake.open(settings=settings), source, corpus=corpus, recipe=recipe,
                             recipe_options=options, max_duration_s=max_duration,
                             shard_size=shard_size, max_workers=max_workers)
    except (RecipeError, StorageError, ValueError) as error:
        fail(str(error))
    emit(summary, title=f"ingest {corpus}", as_json=as_json)
