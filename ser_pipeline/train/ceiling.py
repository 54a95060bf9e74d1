"""The ceiling test of the training loop: a student learning a teacher of its own kind.

A trained student is exported to ONNX (input ``signal``, output ``logits``: exactly what
:class:`~ser_pipeline.teacher.onnx.OnnxTeacher` serves) and used as an ``onnx:`` teacher.
A fresh student of the same architecture, from another seed, then learns its labels. Every
function the teacher computes is one the student can represent, so a dev CCC below
:data:`CEILING_TARGET` on any dimension points at the loop (data path, loss, schedule,
evaluation), not at the data or the teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS

#: Dev CCC against the teacher that a same-architecture student must reach on every dimension.
CEILING_TARGET = 0.95


def export_as_teacher(model: torch.nn.Module, out: str | Path, *, name: str) -> str:
    """Export a student (``[batch, samples] -> [batch, 3]``) as an ``onnx:`` teacher spec.

    Args:
        model: The student module (put in eval mode here).
        out: The ``.onnx`` file to write.
        name: The teacher's readable name (its id is this name plus the file's sha256).

    Returns:
        ``onnx:<out>``, loadable by :func:`ser_pipeline.teacher.load_teacher`.
    """
    from ser_pipeline.export import export_fp32

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export_fp32(model.eval(), out, metadata={"ser_name": name, "ser_precision": "fp32"})
    return f"onnx:{out}"


def ceiling_test(
    lake: Lake,
    *,
    teacher_run_id: str,
    workdir: str | Path,
    hyperparams: Mapping[str, Any],
    corpora: Sequence[str] | None = None,
    seed: int = 1,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """Relabel ``corpora`` with a trained run as teacher and train a fresh copy on it.

    Args:
        lake: The lake holding the run and the audio.
        teacher_run_id: A finished run whose best checkpoint becomes the teacher.
        workdir: Where the teacher's ONNX file is written.
        hyperparams: The student's :class:`~ser_pipeline.train.Hyperparams` fields.
        corpora: Corpora to label and train on (default: the teacher run's corpora).
        seed: The student's seed (not the teacher's, so it starts elsewhere).
        time_budget_s: Wall-clock budget of the student's run.

    Returns:
        ``{teacher_id, teacher_run_id, run_id, student, steps, best_dev_ccc, target, passed,
        history}``: ``passed`` when every dimension reaches :data:`CEILING_TARGET`.
    """
    from ser_pipeline.label import label_lake
    from ser_pipeline.runs import load_run_model, read_run_meta
    from ser_pipeline.train.api import train_one
    from ser_pipeline.train.hparams import Hyperparams

    model, info = load_run_model(lake, teacher_run_id, which="best")
    student = info.student
    spec = export_as_teacher(model, Path(workdir) / f"{teacher_run_id}.onnx",
                             name=f"{student}-ceiling")
    corpora = list(corpora or info.corpora or []) or None
    labels = label_lake(lake, teacher=spec, corpora=corpora, threads=1)
    hp = Hyperparams.from_dict({**hyperparams, "corpora": corpora})
    run = train_one(lake, student=student, teacher_id=labels.teacher_id, seed=seed,
                    hyperparams=hp, student_options=info.student_options,
                    time_budget_s=time_budget_s)
    best = run["best_dev_ccc"] or {}
    history = read_run_meta(lake, run["run_id"]).to_dict()["history"]
    return {
        "teacher_id": labels.teacher_id, "teacher_run_id": teacher_run_id,
        "run_id": run["run_id"], "student": student, "steps": run["steps"],
        "best_dev_ccc": best, "target": CEILING_TARGET,
        "passed": all(best.get(d, 0.0) >= CEILING_TARGET for d in LABELS),
        "history": history,
    }
