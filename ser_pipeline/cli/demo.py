"""``ser demo-corpus``: synthesize a small labelled speech corpus with espeak-ng."""

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
