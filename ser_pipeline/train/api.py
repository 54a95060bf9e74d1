"""Entry points: :func:`train_one` (one run, or its resume) and :func:`train_students`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from ser_pipeline.lake import Lake
from ser_pipeline.runs import new_run_id
from ser_pipeline.splits import DEFAULT_DEV_FRACTION
from ser_pipeline.students import check_student
from ser_pipeline.train.device import resolve_device
from ser_pipeline.train.hparams import Hyperparams, Runtime, TrainInputError
from ser_pipeline.train.loop import Determinism, run
from ser_pipeline.train.state import load_resume_state
from ser_pipeline.train.targets import prepare_data, teacher_ids


def train_one(
    lake: Lake | str,
    *,
    student: str | None = None,
    teacher_id: str | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    seed: int = 0,
    hyperparams: Hyperparams | Mapping[str, Any] | None = None,
    student_options: Mapping[str, Any] | None = None,
    time_budget_s: float | None = None,
    stop_at_step: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    compile: bool = False,
    gpu_slot: int = 0,
) -> dict[str, Any]:
    """Train (or resume) one student against one teacher's labels.

    Args:
        lake: The lake (or its URL, so Prefect/Dask tasks pass a reference).
        student: Student name (ignored on resume: the run's own is used).
        teacher_id: Teacher whose labels are the targets (ignored on resume).
        run_id: Id for a new run (default: a fresh one).
        resume: Id of a run to continue from its last saved state.
        seed: Seed for initialisation, data order, crops and augmentation.
        hyperparams: :class:`Hyperparams` or a dict of its fields.
        student_options: Constructor options for the student.
        time_budget_s: Stop (status ``stopped_budget``, resumable) after this much wall time.
        stop_at_step: Stop after this step with a resumable state (status ``interrupted``);
            simulates an interruption, used by tests and by schedulers with step quotas.
        device: ``cpu`` (default), ``auto``, ``cuda`` or ``cuda:N`` (a resume may change it).
        workers: Data worker processes (0: in-process); the batches are the same for any.
        compile: ``torch.compile`` the training forward.
        gpu_slot: Which of the visible GPUs plain ``cuda`` means (``slot % count``).

    Returns:
        The run record ``{run_id, student, params, best_dev_ccc, initial_dev_ccc, steps,
        status, ...}``.
    """
    lake = Lake.open(lake) if isinstance(lake, str) else lake
    runtime = Runtime(device=str(resolve_device(device, slot=gpu_slot)), workers=workers,
                      compile=compile)
    state: dict[str, Any] | None = None
    if resume:
        info, state = load_resume_state(lake, resume)
        student, teacher_id, seed = info.student, info.teacher_id, info.seed
        student_options = info.student_options
        hp = Hyperparams.from_dict(info.hyperparams)
        run_id = resume
        data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                            dev_fraction=hp.dev_fraction, crop_s=hp.crop_s,
                            snapshot=info.lake_snapshot)
    else:
        if not student or not teacher_id:
            raise TrainInputError("train_one needs a student and a teacher_id (or resume=)")
        check_student(student)
        hp = (hyperparams if isinstance(hyperparams, Hyperparams)
              else Hyperparams.from_dict(hyperparams or {}))
        data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                            dev_fraction=hp.dev_fraction, crop_s=hp.crop_s)
        run_id = run_id or new_run_id(student)
        student_options = dict(student_options or {})
    with Determinism(hp.num_threads):
        return run(lake, run_id=run_id, student=student, data=data, hp=hp, seed=seed,
                   student_options=dict(student_options), state=state,
                   time_budget_s=time_budget_s, stop_at_step=stop_at_step, runtime=runtime)


def train_students(
    lake: Lake,
    *,
    students: list[str],
    teacher_id: str | None,
    epochs: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    crop_s: float = 2.0,
    batch_size: int = 16,
    lr: float | None = None,
    ccc_weight: float = 1.0,
    mixup: bool = False,
    eval_every: int | None = None,
    patience: int = 5,
    resume: str | None = None,
    executor: Executor | None = None,
    student_options: Mapping[str, Mapping[str, Any]] | None = None,
    corpora: list[str] | None = None,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    time_budget_s: float | None = None,
    num_threads: int = 1,
    runner: Callable[..., dict] | None = None,
    device: str = "cpu",
    workers: int = 0,
    compile: bool = False,
) -> dict[str, Any]:
    """Train several students on one teacher's labels (or resume one run).

    All inputs are checked before any training starts (unknown student, teacher id
    without labels, too few clips for the split, crop longer than every clip). The split
    is stored once, then each student trains as one task: sequentially by default, on
    ``executor`` when given (a thread pool, or Dask through the Prefect flow).

    Args:
        lake: The lake.
        students: Student names (see :data:`ser_pipeline.students.STUDENTS`).
        teacher_id: Teacher whose labels are the targets.
        epochs: Epochs (default 30 when ``max_steps`` is not set either).
        max_steps: Optimiser steps (caps ``epochs`` when both are set).
        seed: Seed for initialisation, data order and augmentation.
        crop_s: Training crop length in seconds.
        batch_size: Clips per step.
        lr: AdamW learning rate (default: the student family's, ``family_of(name)``).
        ccc_weight: Weight of the ``1 - CCC`` term added to the MSE.
        mixup: Mix pairs of clips and their targets.
        eval_every: Steps between dev evaluations/checkpoints (default one epoch, >= 50).
        patience: Evaluations without a better dev CCC before early stopping.
        resume: Run id to continue (the other options come from that run).
        executor: Where to run the per-student tasks.
        student_options: ``{student name: constructor options}``.
        corpora: Train on these corpora only (default all labelled ones).
        dev_fraction: Dev share of the stored split.
        time_budget_s: Per-run wall-clock budget (the run stops resumably when spent).
        num_threads: torch threads per run (fixed for reproducibility).
        runner: Callable used per student instead of :func:`train_one` (the flow passes a
            Prefect task submitter).
        device: ``cpu`` (default), ``auto``, ``cuda`` or ``cuda:N``. Plain ``cuda``/``auto``
            gives student ``i`` GPU ``i % count`` of the process that trains it: one
            student per GPU. Checked here only when no ``executor`` is given (the workers
            of an executor may see GPUs this process does not).
        workers: Data worker processes per run (0: in-process).
        compile: ``torch.compile`` the training forward.

    Returns:
        ``{teacher_id, split_name, train_clips, dev_clips, runs: [run record, ...]}``.
    """
    runner = runner or train_one
    if executor is None:
        resolve_device(device)  # fail before any run folder exists
    Runtime(device=device, workers=workers, compile=compile)
    runtime = {"device": device, "workers": workers, "compile": compile}
    if resume:
        run = runner(lake.url, resume=resume, time_budget_s=time_budget_s, **runtime)
        return {"teacher_id": run["teacher_id"], "resumed": resume, "runs": [run]}
    if not students:
        raise TrainInputError("name at least one student (--student wav2small)")
    for name in students:
        check_student(name)
    if not teacher_id:
        raise TrainInputError("a teacher id is required (--teacher-id); teacher ids with labels: "
                              + (", ".join(teacher_ids(lake)) or "none"))
    hp = Hyperparams(crop_s=crop_s, batch_size=batch_size, lr=lr, ccc_weight=ccc_weight,
                     mixup=mixup, epochs=epochs, max_steps=max_steps, eval_every=eval_every,
                     patience=patience, dev_fraction=dev_fraction, num_threads=num_threads,
                     corpora=sorted(corpora) if corpora else None)
    data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                        dev_fraction=dev_fraction, crop_s=crop_s)
    options = student_options or {}
    jobs = [{"student": name, "teacher_id": teacher_id, "seed": seed,
             "hyperparams": hp.to_dict(), "student_options": dict(options.get(name, {})),
             "run_id": new_run_id(name), "time_budget_s": time_budget_s, **runtime,
             "gpu_slot": slot}
            for slot, name in enumerate(students)]
    if executor is not None:
        futures = [executor.submit(runner, lake.url, **job) for job in jobs]
        runs = [future.result() for future in futures]
    else:
        runs = [runner(lake.url if runner is not train_one else lake, **job) for job in jobs]
    return {"teacher_id": teacher_id, "teacher_sha256": data.teacher_sha256,
            "split_name": data.split_name, "corpora": data.corpora,
            "train_clips": len(data.train_ids), "dev_clips": len(data.dev_ids), "runs": runs}
