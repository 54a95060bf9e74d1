"""``ser robustness``: a model on seeded perturbations of the dev clips, against ser-tests."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from ser_pipeline.cli import common
from ser_pipeline.cli.common import app, console, emit, fail, note


@app.command("robustness")
def robustness_command(
    run: Annotated[str | None, typer.Option("--run", help="Training run id (its best "
                                            "checkpoint).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="ONNX file, folder with model.onnx, or "
        "registry://name[@version|latest][#int8|#fp32].")] = None,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Corpus (repeat; default: the run's corpora, else every corpus "
        "with splits).")] = None,
    split: Annotated[str, typer.Option(help="Split whose clips are perturbed.")] = "dev",
    split_name: Annotated[str | None, typer.Option(
        "--split-name", help="Split definition when a corpus has several.")] = None,
    reference: Annotated[str, typer.Option(help="teacher or human.")] = "teacher",
    teacher: Annotated[str | None, typer.Option(
        "--teacher", help="Teacher id whose labels are the reference (default: the "
        "model's).")] = None,
    perturbation: Annotated[list[str] | None, typer.Option(
        "--perturbation", help="Perturbation name (repeat; default all: noise_snr20db, "
        "noise_snr10db, noise_snr5db, telephone, gain_minus20db, gain_plus6db_clipped, "
        "room_rt60_500ms, tilt_minus3db_per_oct).")] = None,
    max_clips: Annotated[int, typer.Option(
        min=0, help="Most clips per corpus, a seeded subset (0: every clip).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the perturbations, subset and "
                                      "intervals.")] = 0,
    resamples: Annotated[int, typer.Option(min=1, help="Bootstrap resamples.")] = 1000,
    threads: Annotated[int, typer.Option(min=1, help="ONNX Runtime threads.")] = 1,
    lake: common.LakeOption = None,
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Run a model on perturbed dev clips (noise, telephone band, gain, room, tilt) and
    record CCC, drop and unchanged share beside audEERING ser-tests' thresholds."""
    from ser_pipeline import report_tables
    from ser_pipeline.evaluate import EvaluateError
    from ser_pipeline.lake import Lake
    from ser_pipeline.perturb import PerturbationError
    from ser_pipeline.robustness_stage import RobustnessError, run_robustness
    from ser_pipeline.stats import StatsError

    if (run is None) == (model is None):
        fail("give exactly one of --run RUN_ID or --model PATH_OR_REGISTRY_URI")
    settings = common.settings_for(lake, registry)
    try:
        result = run_robustness(
            Lake.open(settings=settings), run_id=run, model=model, corpora=corpus or None,
            split=split, split_name=split_name, reference=reference, teacher_id=teacher,
            perturbations=perturbation or None, max_clips=max_clips or None, seed=seed,
            n_resamples=resamples, threads=threads, settings=settings)
    except (EvaluateError, RobustnessError, PerturbationError, StatsError) as error:
        fail(str(error))
    summary = result.to_dict()
    if as_json:
        emit(summary, title="robustness", as_json=True)
        return
    for message in result.notices:
        note(message)
    layout = report_tables.fit(report_tables.robustness_layouts(result.rows()), console.width)
    report_tables.print_layout(layout, console)
    written = summary["rows_written"]
    console.print(Text(f"{written} rows written to {settings.lake}/robustness"
                       + (" (already recorded: nothing recomputed)" if written == 0 else "")
                       + "; run 'ser db build' to see them in reports", overflow="fold"))
