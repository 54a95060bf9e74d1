"""Quarantine rows: one builder for every stage, and the reader that knows old rows.

A row records a file or clip a stage could not use, with a stable ``reason`` code and the
tool's own words in ``message``. Labeling rows name their teacher in ``teacher_id``; rows
written before that column existed carry it only as a ``"teacher <id>: "`` prefix of the
message, and :func:`quarantined_ids` reads both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

import pyarrow.compute as pc
import pyarrow.dataset as ds

from ser_pipeline.lake import Lake, utcnow


def legacy_teacher_prefix(teacher_id: str) -> str:
    """How rows written before the ``teacher_id`` column named their teacher.

    Examples:
        >>> legacy_teacher_prefix("w2v2-tiny")
        'teacher w2v2-tiny: '
    """
    return f"teacher {teacher_id}: "


@dataclass(frozen=True, kw_only=True)
class QuarantineRow:
    """One row of the ``quarantine`` table (fields in the schema's order).

    Examples:
        >>> row = QuarantineRow(stage="label", reason="too_short", message="100 samples",
        ...                     audio_id="ab12", teacher_id="t1")
        >>> {k: v for k, v in row.to_dict().items() if k != "quarantined_at"}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'corpus': None, 'source_path': None, 'audio_id': 'ab12', 'stage': 'label',
         'teacher_id': 't1', 'reason': 'too_short', 'message': '100 samples'}
    """

    corpus: str | None = None
    source_path: str | None = None
    audio_id: str | None = None  # None when the bytes could not be read
    stage: str  # ingest | label | evaluate
    teacher_id: str | None = None  # labeling rows: the teacher that rejected the clip
    reason: str  # stable code, e.g. "truncated", "decode_error"
    message: str  # the decoder's / model's own words
    quarantined_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict:
        """The row as ``Lake.write_part`` takes it."""
        return asdict(self)


def quarantined_ids(lake: Lake, *, stage: str, teacher_id: str) -> set[str]:
    """Audio ids that ``teacher_id`` quarantined at ``stage``.

    Reads the ``teacher_id`` column, and for rows written without it (null there) the
    legacy message prefix.
    """
    table = lake.read("quarantine", columns=["audio_id", "teacher_id", "message"],
                      filter=ds.field("stage") == stage)
    legacy = pc.and_kleene(pc.is_null(table.column("teacher_id")),
                           pc.starts_with(pc.fill_null(table.column("message"), ""),
                                          legacy_teacher_prefix(teacher_id)))
    mine = pc.or_kleene(pc.fill_null(pc.equal(table.column("teacher_id"), teacher_id), False),
                        legacy)
    return set(table.filter(mine).column("audio_id").to_pylist()) - {None}
