"""Prefect flow: train several students in parallel, one task per student.

Thin wiring over :func:`ser_pipeline.train.train_students`: the library checks every input
and stores the split once, then each student becomes a Prefect task (``train-student``)
on a bounded thread pool, or on Dask workers when a scheduler address is set. Tasks get
the lake URL and run options (references, not arrays) and return the run record.
"""

from __future__ import annotations

from typing import Any

# flows.common sets Prefect's environment defaults, so it is imported before prefect.
# isort: off
from flows.common import (library_logs_in_run_log, publish_markdown, publish_summary,
                          task_runner_for)
from prefect import flow, task
# isort: on

from ser_pipeline.config import get_settings
from ser_pipeline.lake import Lake
from ser_pipeline.train import train_one, train_students


@task(name="train-student", task_run_name="train-{student}", persist_result=False)
def train_student_task(lake: str, *, student: str | None = None, **options: Any) -> dict:
    with library_logs_in_run_log():
        return train_one(lake, student=student, **options)


@task(name="resume-run", task_run_name="resume-{resume}", persist_result=False)
def resume_task(lake: str, *, resume: str, **options: Any) -> dict:
    with library_logs_in_run_log():
        return train_one(lake, resume=resume, **options)


#: The options a resumed run takes from the caller (the others are the run's own).
_RESUME_OPTIONS = ("time_budget_s", "device", "workers", "compile")


class _TaskSubmitter:
    """The ``executor`` interface train_students expects, backed by Prefect tasks."""

    def submit(self, fn: Any, lake: str, **job: Any):
        return train_student_task.submit(lake, **job)


@flow(name="train-students-tasks", persist_result=False)
def _fan_out(lake: str, options: dict[str, Any]) -> dict:
    return train_students(Lake.open(lake), executor=_TaskSubmitter(), **options)


@flow(name="train", persist_result=False)
def train_flow(
    students: list[str],
    teacher_id: str,
    lake: str | None = None,
    dask_address: str | None = None,
    resume: str | None = None,
    **options: Any,
) -> dict:
    """Train ``students`` on the labels of ``teacher_id`` (or resume one run).

    ``students`` are names from the catalog, :data:`ser_pipeline.students.STUDENTS`.
    ``options`` are those of :func:`ser_pipeline.train.train_students` (``epochs``,
    ``max_steps``, ``seed``, ``crop_s``, ``batch_size``, ``lr``, ... ``device``,
    ``workers``, ``compile``), with its defaults: the library owns them, so the flow
    cannot drift from ``--engine local``. On ``resume`` only the run-time options
    (``time_budget_s``, ``device``, ``workers``, ``compile``) apply; the rest come from the
    run.

    ``device`` is ``cpu``, ``auto``, ``cuda`` or ``cuda:N``: plain ``cuda`` gives student
    ``i`` GPU ``i % count`` of the worker that trains it (one student per GPU); ``workers``
    is the data worker processes per run.

    Returns the summary of :func:`ser_pipeline.train.train_students`; it is also kept as
    the ``train-summary`` table artifact and a markdown table of the runs.
    """
    settings = get_settings(lake=lake, dask_address=dask_address)
    if resume:
        run = resume_task(settings.lake, resume=resume,
                          **{k: v for k, v in options.items() if k in _RESUME_OPTIONS})
        summary = {"teacher_id": run["teacher_id"], "resumed": resume, "runs": [run]}
    else:
        runner = task_runner_for(settings, dask_address=dask_address)
        summary = _fan_out.with_options(task_runner=runner)(
            settings.lake, {"students": list(students), "teacher_id": teacher_id, **options})
    publish_summary({k: v for k, v in summary.items() if k != "runs"}, key="train-summary",
                    title="ser train: summary")
    publish_markdown(_markdown(summary), key="train-runs", title="ser train: runs")
    return summary


def _markdown(summary: dict) -> str:
    lines = ["| run id | student | params | status | steps | dev CCC A | D | V | mean |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in summary["runs"]:
        best = run.get("best_dev_ccc") or {}
        cells = [f"{best[k]:.3f}" if k in best else "-"
                 for k in ("arousal", "dominance", "valence", "mean")]
        lines.append(f"| {run['run_id']} | {run['student']} | {run['params']:,} | "
                     f"{run['status']} | {run['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
