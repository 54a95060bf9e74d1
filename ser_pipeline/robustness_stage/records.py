"""What a robustness run returns: one :class:`SuiteRecord` per suite run, in a
:class:`RobustnessRun`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ser_pipeline.evaluate import ModelIdentity


@dataclass(frozen=True)
class SuiteRecord:
    """One suite run: a model on one corpus and split against one reference.

    Attributes:
        robustness_id: The part key (also the rows' ``robustness_id``).
        request: Hash of what was asked (model key, clips, references, options); with the
            model's name it gives the part key.
        corpus: Corpus of the clips.
        split: Split of the clips.
        split_name: Split definition.
        reference: ``teacher`` or ``human``.
        teacher_id: The teacher (the model's, for human rows too).
        n_clips: Clips scored.
        rows: The ``robustness`` rows, one per (perturbation, dimension).
        reused: The rows were already in the lake: nothing was computed.
        written: This call wrote the part.
    """

    robustness_id: str
    request: str
    corpus: str
    split: str
    split_name: str | None
    reference: str
    teacher_id: str | None
    n_clips: int
    rows: tuple[dict[str, Any], ...]
    reused: bool
    written: bool

    @property
    def passed(self) -> bool:
        return all(row["passed"] for row in self.rows)


@dataclass(frozen=True)
class RobustnessRun:
    """What :func:`run_robustness` did: the model, its suite runs and the notices."""

    identity: ModelIdentity
    model_file: str | None
    records: tuple[SuiteRecord, ...]
    notices: tuple[str, ...] = field(default=())

    def rows(self) -> list[dict[str, Any]]:
        return [row for record in self.records for row in record.rows]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (one entry per suite run, pass/fail per perturbation)."""
        suites = []
        for record in self.records:
            verdicts: dict[str, bool] = {}
            for row in record.rows:
                verdicts[row["perturbation"]] = verdicts.get(row["perturbation"], True) \
                    and bool(row["passed"])
            suites.append({
                "robustness_id": record.robustness_id, "corpus": record.corpus,
                "split": record.split, "reference": record.reference,
                "teacher_id": record.teacher_id, "clips": record.n_clips,
                "reused": record.reused, "written": record.written,
                "passed": sorted(p for p, ok in verdicts.items() if ok),
                "failed": sorted(p for p, ok in verdicts.items() if not ok)})
        return {"model": self.identity.model, "model_key": self.identity.model_key,
                "model_file": self.model_file, "run_id": self.identity.run_id,
                "student": self.identity.student, "suites": suites,
                "rows_written": sum(len(r.rows) for r in self.records if r.written),
                "notices": list(self.notices)}
