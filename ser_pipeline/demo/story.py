"""The demo's closing summary: the paper's two claims, in plain words, from its own table.

The paper claims (1) a teacher that judges emotion, measured against human labels, and
(2) a tiny student that keeps most of that, having learned from the teacher alone. The
summary reads both from the ``paper_table`` report's rows of one corpus and split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ser_pipeline.schemas import LABELS


def _figure(record: Mapping[str, Any], prefix: str, dimension: str) -> str:
    value = record.get(f"{prefix}_{dimension}")
    if value is None:
        return f"{dimension[0].upper()} –"
    lo, hi = record.get(f"{prefix}_{dimension}_lo"), record.get(f"{prefix}_{dimension}_hi")
    interval = f" [{lo:.2f},{hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{dimension[0].upper()} {value:.2f}{interval}"


def _dimensions(record: Mapping[str, Any], prefix: str) -> str:
    return ", ".join(_figure(record, prefix, dimension) for dimension in LABELS)


def _size(record: Mapping[str, Any]) -> str:
    parts = []
    if record.get("params"):
        parts.append(f"{int(record['params']):,} params")
    if record.get("int8_kb"):
        parts.append(f"{record['int8_kb']:.0f} KB int8")
    return f" ({', '.join(parts)})" if parts else ""


def demo_story(records: Sequence[Mapping[str, Any]], *, corpus: str,
               split: str = "dev") -> list[str]:
    """Sentences stating the teacher's CCC against the humans, and each student's against
    the humans and against the teacher, with sizes; ``[]`` without a teacher row.

    Examples:
        >>> rows = [
        ...     {"corpus": "p", "split": "dev", "kind": "teacher", "model": "t", "n": 9,
        ...      "human_arousal": .8, "human_dominance": .7, "human_valence": .6,
        ...      "human_mean": .7},
        ...     {"corpus": "p", "split": "dev", "kind": "student", "model": "wav2small",
        ...      "human_arousal": .78, "human_dominance": .66, "human_valence": .56,
        ...      "human_mean": .6667, "teacher_mean": .94, "params": 72000, "int8_kb": 120}]
        >>> for line in demo_story(rows, corpus="p"):  # doctest: +NORMALIZE_WHITESPACE
        ...     print(line)
        On p dev (9 clips):
        - the teacher t judges emotion at CCC 0.70 against the human labels
          (A 0.80, D 0.70, V 0.60);
        - wav2small (72,000 params, 120 KB int8) scores 0.67 against the humans
          (A 0.78, D 0.66, V 0.56), 0.03 below its teacher, and 0.94 against the teacher
          it learned from;
    """
    rows = [r for r in records if r.get("corpus") == corpus and r.get("split") == split]
    teachers = [r for r in rows if r.get("kind") == "teacher"]
    if not teachers:
        return []
    teacher = teachers[0]
    lines = [f"On {corpus} {split} ({teacher.get('n')} clips):"]
    if teacher.get("human_mean") is None:
        lines.append(f"- the teacher {teacher['model']} has no CCC against human labels here")
        return lines
    lines.append(f"- the teacher {teacher['model']} judges emotion at CCC "
                 f"{teacher['human_mean']:.2f} against the human labels "
                 f"({_dimensions(teacher, 'human')});")
    for student in (r for r in rows if r.get("kind") == "student"):
        if student.get("human_mean") is None or student.get("teacher_mean") is None:
            lines.append(f"- {student['model']}{_size(student)} is not scored on both "
                         "references yet;")
            continue
        gap = student["human_mean"] - teacher["human_mean"]
        relation = (f"{abs(gap):.2f} {'below' if gap < 0 else 'above'} its teacher"
                    if round(abs(gap), 2) else "level with its teacher")
        lines.append(f"- {student['model']}{_size(student)} scores {student['human_mean']:.2f} "
                     f"against the humans ({_dimensions(student, 'human')}), {relation}, and "
                     f"{student['teacher_mean']:.2f} against the teacher it learned from;")
    return lines
