"""The robustness report: CCC drop and unchanged share per perturbation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ser_pipeline.report_tables.cells import (
    _DIM,
    MISSING,
    PERTURBATION_LABELS,
    Block,
    Layout,
    _figure,
    _groups,
    _interval_phrase,
    finite,
)
from ser_pipeline.schemas import LABELS


def _verdict(record: Mapping[str, Any]) -> str:
    if record.get("passed"):
        return "pass"
    failed = [name for name, key in (("drop", "passed_drop"), ("unch.", "passed_unchanged"))
              if not record.get(key)]
    return "FAIL " + "+".join(failed)


def _share(value: Any) -> str:
    number = finite(value)
    return MISSING if number is None else f"{100 * number:.0f}%"


def robustness_layouts(records: Sequence[Mapping[str, Any]]) -> list[Layout]:
    """Candidate layouts of the ``robustness`` report: per model, corpus, split and
    reference, a row per perturbation (CCC drop per dimension with its paired interval,
    unchanged share, ser-tests verdict) or, compactly, a row per perturbation and
    dimension."""
    if not records:
        return [Layout("empty", ())]
    first = records[0]
    footnotes = [
        f"ser-tests (audEERING) thresholds: CCC drop <= {first.get('max_ccc_drop'):g}, "
        f"unchanged >= {100 * float(first.get('min_unchanged_share')):g}% of clips "
        "(|clean - perturbed| < 0.05); pass/fail on the point values, as ser-tests does",
        "drop = clean CCC - perturbed CCC, with a paired " + _interval_phrase(records)]
    wide, stacked, narrow = [], [], []
    groups = _groups(records, ("model", "corpus", "split", "reference", "teacher_id"))
    for (model, corpus, split, reference, _teacher), rows in groups.items():
        by_perturbation = _groups(rows, ("perturbation",))
        clean = {r["dimension"]: _figure(r, "clean_ccc") for r in rows}
        n = rows[0].get("n_clips")
        title = f"{model} · {corpus} · {split} · vs {reference} · {n} clips"
        clean_note = "clean CCC: " + ", ".join(
            f"{_DIM[d]} {clean[d].text()}" for d in LABELS if d in clean)
        wide_rows, stacked_rows, narrow_rows = [], [], []
        for (name,), entries in by_perturbation.items():
            by_dim = {e["dimension"]: e for e in entries}
            label = PERTURBATION_LABELS.get(str(name), str(name))
            ordered = [by_dim[d] for d in LABELS if d in by_dim]
            wide_rows.append((label, *(_figure(e, "ccc_drop") for e in ordered),
                              "/".join(_share(e.get("unchanged_share")).rstrip("%")
                                       for e in ordered) + "%",
                              "pass" if all(e.get("passed") for e in ordered) else "FAIL"))
            for e in ordered:
                first_cells = (label if e is ordered[0] else "", _DIM[e["dimension"]])
                last_cells = (_figure(e, "ccc_drop"), _share(e.get("unchanged_share")),
                              _verdict(e))
                stacked_rows.append((*first_cells, _figure(e, "perturbed_ccc"), *last_cells))
                narrow_rows.append((*first_cells, *last_cells))
        wide.append(Block(title, ("perturbation", *(f"drop {_DIM[d]}" for d in LABELS),
                                  "unchanged A/D/V", "ser-tests"),
                          tuple(wide_rows), notes=(clean_note,)))
        stacked.append(Block(title, ("perturbation", "dim", "CCC perturbed", "drop",
                                     "unch.", "ser-tests"), tuple(stacked_rows), left=2,
                             notes=(clean_note,)))
        narrow.append(Block(title, ("perturbation", "dim", "drop", "unch.", "ser-tests"),
                            tuple(narrow_rows), left=2, notes=(clean_note,)))
    notes = tuple(footnotes)
    return [Layout("one row per perturbation", tuple(wide), notes),
            Layout("one row per perturbation", tuple(wide), notes, compact=True),
            Layout("one row per dimension", tuple(stacked), notes),
            Layout("one row per dimension", tuple(stacked), notes, compact=True),
            Layout("one row per dimension, drops only", tuple(narrow), notes, compact=True)]
