"""``ser train``: distil a teacher's labels into one or more students."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, emit, fail
from ser_pipeline.students.families import learning_rates_help, students_help


@app.command("train")
def train_command(
    student: Annotated[list[str] | None, typer.Option(
        "--student", help=f"Student to train (repeat for several): {students_help()}.")
    ] = None,
    teacher_id: Annotated[str | None, typer.Option(
        "--teacher-id", help="Teacher whose labels are the targets (see teacher_labels).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs (default 30).")
                      ] = None,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", min=1, help="Optimiser steps (caps --epochs when both are given).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed: init, data order, augmentation.")
                    ] = 0,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Continue this run id exactly from its last saved state.")] = None,
    crop_s: Annotated[float, typer.Option("--crop-s", help="Training crop length (seconds).")
                      ] = 2.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    lr: Annotated[float | None, typer.Option(
        "--lr", help=f"AdamW learning rate (default per family: {learning_rates_help()}).")
    ] = None,
    ccc_weight: Annotated[float, typer.Option(
        "--ccc-weight", help="Weight of the (1 - CCC) loss term added to MSE.")] = 1.0,
    mixup: Annotated[bool, typer.Option("--mixup/--no-mixup", help="Mixup augmentation.")
                     ] = False,
    eval_every: Annotated[int | None, typer.Option(
        "--eval-every", min=1, help="Steps between dev evaluations and checkpoints.")] = None,
    patience: Annotated[int, typer.Option(
        "--patience", min=1, help="Evaluations without improvement before stopping.")] = 5,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Train on this corpus only (repeatable; default all).")] = None,
    dev_fraction: Annotated[float, typer.Option("--dev-fraction", help="Dev share of the split.")
                            ] = 0.2,
    time_budget: Annotated[float | None, typer.Option(
        "--time-budget", help="Wall-clock seconds per run; stops resumably when spent.")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="torch threads per run (fixed for reproducible runs).")] = 1,
    device: Annotated[str, typer.Option(
        "--device", help="cpu, auto (CUDA when visible), cuda or cuda:N; plain cuda gives "
        "each student its own GPU.")] = "cpu",
    workers: Annotated[int, typer.Option(
        "--workers", min=0, help="Data worker processes per run (0: in-process; same "
        "batches for any number).")] = 0,
    compile_model: Annotated[bool, typer.Option(
        "--compile/--no-compile", help="torch.compile the training forward pass.")] = False,
    lake: common.LakeOption = None,
    as_json: common.JsonOption = False,
    engine: common.EngineOption = "prefect",
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", help="Run the per-student tasks on this Dask scheduler.")] = None,
) -> None:
    """Train students on teacher labels; prints each run id and its best dev CCC."""
    from ser_pipeline.runs import RunError
    from ser_pipeline.storage import StorageError

    common.check_engine(engine)
    if not resume and not student:
        fail("name a student with --student (e.g. --student wav2small) or --resume RUN_ID")
    if not resume and not teacher_id:
        fail("--teacher-id is required (the teacher whose labels are the targets)")
    settings = common.settings_for(lake)
    options: dict[str, Any] = {
        "epochs": epochs, "max_steps": max_steps, "seed": seed, "crop_s": crop_s,
        "batch_size": batch_size, "lr": lr, "ccc_weight": ccc_weight, "mixup": mixup,
        "eval_every": eval_every, "patience": patience, "resume": resume,
        "corpora": corpus or None, "dev_fraction": dev_fraction, "time_budget_s": time_budget,
        "num_threads": threads, "device": device, "workers": workers, "compile": compile_model,
    }
    try:
        if not dask_address:  # Dask workers may see GPUs this machine does not
            from ser_pipeline.train.device import resolve_device

            resolve_device(device)
        if engine == "prefect":
            from flows.train import train_flow

            summary = train_flow(students=student or [], teacher_id=teacher_id or "",
                                 lake=settings.lake, dask_address=dask_address, **options)
        else:
            from ser_pipeline.lake import Lake
            from ser_pipeline.progress import show_progress_logs
            from ser_pipeline.train import train_students

            show_progress_logs()  # one line per evaluation on stderr (Prefect does its own)
            summary = train_students(Lake.open(settings=settings), students=student or [],
                                     teacher_id=teacher_id, **options)
    except (ValueError, RunError, StorageError) as error:
        fail(str(error))
    if as_json:
        emit(summary, title="train", as_json=True)
    else:
        console.print(runs_table(summary))
    failed = [run for run in summary["runs"] if run["status"] == "stopped_nan"]
    if failed:
        fail("; ".join(f"{run['run_id']}: {run['error']}" for run in failed), code=1)


def runs_table(summary: dict) -> Table:
    table = Table(title=escape(f"train (teacher {summary.get('teacher_id')})"), header_style="bold")
    for column in ("run id", "student", "params", "status", "steps", "best step",
                   "dev CCC A", "D", "V", "mean", "clips/s"):
        table.add_column(column)
    for run in summary["runs"]:
        best = run.get("best_dev_ccc") or {}
        add_plain_row(table, run["run_id"], run["student"], f"{run['params']:,}", run["status"],
                      str(run["steps"]), str(run["best_step"]),
                      *(f"{best[k]:.3f}" if k in best else "-"
                        for k in ("arousal", "dominance", "valence", "mean")),
                      str(run.get("clips_per_s")))
    return table
