"""``ser demo-corpus`` (a small labelled speech corpus, espeak-ng) and ``ser demo-teacher``
(rebuild the shipped demo teacher)."""

from __future__ import annotations

from typing import Annotated

import typer

from ser_pipeline.cli.common import JsonOption, app, emit, fail


@app.command("demo-corpus")
def demo_corpus_command(
    out: Annotated[str, typer.Argument(help="Output folder (local path or s3://).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of clips.")] = 120,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes).")] = 0,
    unlabeled_fraction: Annotated[float, typer.Option(
        "--unlabeled-fraction", min=0.0, max=1.0,
        help="Share of clips left without labels (the teacher's unlabeled pool).")] = 0.25,
    max_workers: Annotated[int | None, typer.Option(
        "--max-workers", min=1, help="Concurrent espeak-ng processes (default min(4, CPUs)).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Speech in several voices, rates, pitches and formats, plus labels.csv (csv recipe).

    Ingest it with: ser ingest OUT --corpus demo --recipe csv
    """
    from ser_pipeline.demo import DemoCorpusError, make_demo_corpus

    try:
        summary = make_demo_corpus(out, n=n, seed=seed, unlabeled_fraction=unlabeled_fraction,
                                   max_workers=max_workers)
    except DemoCorpusError as error:
        fail(str(error))
    emit(summary, title="demo corpus", as_json=as_json)


@app.command("demo-teacher")
def demo_teacher_command(
    workdir: Annotated[str, typer.Option(help="Scratch folder: corpus, lake, base teacher.")] = (
        "demo-teacher-build"),
    out: Annotated[str | None, typer.Option(
        help="Where the teacher goes (default: the package's shipped folder).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the shipped demo teacher from scratch (what `make demo-teacher` runs).

    Synthesises the demo corpus, ingests it into a fresh lake, and fully fine-tunes a
    random tiny wav2vec2 on its human labels by the recorded recipe (minutes on 2 cores).
    """
    from pathlib import Path

    from ser_pipeline.demo import DemoCorpusError
    from ser_pipeline.demo.teacher import SHIPPED, rebuild_demo_teacher

    try:
        summary = rebuild_demo_teacher(workdir=Path(workdir), out=Path(out) if out else SHIPPED)
    except DemoCorpusError as error:
        fail(str(error))
    emit(summary, title="demo teacher", as_json=as_json)
