"""Ensembles (``ensemble:<spec>,<spec>``): the average of several teachers' outputs."""

from __future__ import annotations

import hashlib

import numpy as np

from ser_pipeline.teacher.core import Teacher, TeacherError, make_teacher_id


class EnsembleTeacher(Teacher):
    """The average of several teachers' outputs (the paper's w2v2 + WavLM teacher)."""

    def __init__(self, members: list[Teacher]) -> None:
        if len(members) < 2:
            raise TeacherError("an ensemble needs at least two members: "
                               "ensemble:<spec>,<spec>")
        self.members = members
        self.sha256 = hashlib.sha256(",".join(m.sha256 for m in members).encode()).hexdigest()
        self.name = "ensemble-" + "+".join(m.name for m in members)
        self.is_random = any(m.is_random for m in members)
        licenses = sorted({m.license for m in members if m.license})
        self.license = " AND ".join(licenses) if licenses else None
        self.teacher_id = make_teacher_id(self.name, self.sha256, is_random=self.is_random)
        self.device = members[0].device

    def predict_with_windows(self, signals, **options) -> tuple[np.ndarray, np.ndarray]:
        outputs = []
        n_windows = None
        for member in self.members:
            out, n_windows = member.predict_with_windows(signals, **options)
            outputs.append(out)
        return np.mean(outputs, axis=0), n_windows


def split_members(body: str) -> list[str]:
    """Split ``a,b,[c,d]`` at top-level commas; square brackets group a member."""
    members, depth, current = [], 0, []
    for char in body:
        if char == "[":
            depth += 1
            if depth == 1:
                continue
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise TeacherError(f"unbalanced ']' in ensemble members {body!r}")
            if depth == 0:
                continue
        if char == "," and depth == 0:
            members.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth:
        raise TeacherError(f"unbalanced '[' in ensemble members {body!r}")
    members.append("".join(current).strip())
    if any(not m for m in members):
        raise TeacherError(f"empty member in ensemble {body!r}: use ensemble:<spec>,<spec>")
    return members
