"""The paper's table: CCC against the humans and the teacher, and each model's cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ser_pipeline.report_tables.cells import (
    _DIM,
    Block,
    Cell,
    Layout,
    _figure,
    _groups,
    _interval_phrase,
    _n_phrase,
    finite,
)
from ser_pipeline.schemas import LABELS


def short_names(records: Sequence[Mapping[str, Any]]) -> tuple[dict[tuple, str], list[str]]:
    """Short row names and the footnotes that spell out the full ids.

    Students are named by their family (``wav2small``), the teacher ``teacher`` (with a
    number when there are several). Returns ``({(kind, model_id, teacher_id): short},
    footnotes)``.
    """
    teachers = sorted({str(r["teacher_id"]) for r in records if r.get("teacher_id")})
    tag = {t: (f"teacher-{i + 1}" if len(teachers) > 1 else "teacher")
           for i, t in enumerate(teachers)}
    names: dict[tuple, str] = {}
    spelled: dict[str, list[str]] = {}
    for record in records:
        teacher = str(record.get("teacher_id") or "")
        model_id = str(record.get("model_id") or record.get("model") or "")
        if record.get("kind") == "teacher":
            short = tag.get(teacher, "teacher")
            full = f"{short} = {model_id}"
        else:
            short = str(record.get("model") or model_id)
            if len(teachers) > 1 and teacher in tag:
                short = f"{short} ({tag[teacher]})"
            extra = []
            if record.get("published_as"):
                extra.append(f"published as {record['published_as']}")
            if record.get("cost_file"):
                extra.append(f"cost of {record['cost_file']}")
            full = f"{short} = {model_id}" + (f" ({'; '.join(extra)})" if extra else "")
        names[(record.get("kind"), model_id, teacher)] = short
        if full not in spelled.setdefault(short, []):
            spelled[short].append(full)
    notes = [full for fulls in spelled.values() for full in fulls]
    return names, notes


def _name(names: dict[tuple, str], record: Mapping[str, Any]) -> str:
    model_id = str(record.get("model_id") or record.get("model") or "")
    return names[(record.get("kind"), model_id, str(record.get("teacher_id") or ""))]


_COST_HEADERS = ("params", "int8 KB", "ms/5 s", "RSS MB")
_FILE_LABELS = {"model.int8.onnx": "int8", "model.onnx": "fp32"}


def _cost(record: Mapping[str, Any]) -> tuple[Cell, ...]:
    params = record.get("params")
    return (int(params) if params is not None else None, finite(record.get("int8_kb")),
            finite(record.get("ms_per_5s")), finite(record.get("peak_rss_mb")))


def paper_layouts(records: Sequence[Mapping[str, Any]], *, wide: bool = False
                  ) -> list[Layout]:
    """Candidate layouts of the ``paper_table`` report, widest first.

    1. one block per corpus and split: CCC A/D/V against the humans and against the
       teacher, then parameters, int8 KB, ms per 5 s clip and RSS (``--wide`` adds the full
       model id as a column);
    2. per corpus and split, a block against the humans and one against the teacher, and
       one cost block for all corpora;
    3. one line per model and dimension.

    Each comes with full (``0.940 [0.921, 0.955]``) and compact (``0.94 [.92,.96]``)
    figures.
    """
    names, footnotes = short_names(records)
    groups = _groups(records, ("corpus", "split"))
    phrase = _interval_phrase([r for r in records if r.get("kind") == "student"])
    teacher_phrase = next((r["teacher_ci"] for r in records if r.get("teacher_ci")), None)
    notes = [f"CCC (audmetric, population statistics) with {phrase}"
             + (f"; teacher vs human: {teacher_phrase}" if teacher_phrase else "")
             + ". Cost: the newest published version's served file, 5 s clip, 1 thread "
             "(RSS: peak increase)."]
    humanless = [f"{c}/{s}" for (c, s), rows in groups.items()
                 if all(r.get(f"human_{d}") is None for r in rows for d in LABELS)]
    if humanless:
        notes.append(f"no human labels for {', '.join(humanless)}: '–' against humans")
    footnotes = tuple(notes + footnotes)
    dims = [_DIM[d] for d in LABELS]

    one = []
    for (corpus, split), rows in groups.items():
        headers = ("model", *(f"{d} human" for d in dims), *(f"{d} teacher" for d in dims),
                   *_COST_HEADERS) + (("model id",) if wide else ())
        body = tuple(
            (_name(names, r), *(_figure(r, f"human_{d}") for d in LABELS),
             *(_figure(r, f"teacher_{d}") for d in LABELS), *_cost(r))
            + ((str(r.get("model_id") or ""),) if wide else ())
            for r in rows)
        one.append(Block(f"{corpus} · {split} · CCC ({_n_phrase(rows)})", headers, body))
    layouts = [Layout("one block per corpus", tuple(one), footnotes),
               Layout("one block per corpus", tuple(one), footnotes, compact=True)]
    if wide:
        return layouts

    by_reference, costs, seen = [], [], set()
    for (corpus, split), rows in groups.items():
        for reference in ("human", "teacher"):
            shown = [r for r in rows if any(r.get(f"{reference}_{d}") is not None
                                            for d in LABELS)]
            if not shown:
                continue
            by_reference.append(Block(
                f"{corpus} · {split} · CCC vs {reference} ({_n_phrase(shown)})",
                ("model", *dims),
                tuple((_name(names, r), *(_figure(r, f"{reference}_{d}") for d in LABELS))
                      for r in shown)))
        for r in rows:
            name = _name(names, r)
            if name not in seen and any(v is not None for v in _cost(r)):
                seen.add(name)
                costs.append((name, *_cost(r), _FILE_LABELS.get(str(r.get("cost_file")),
                                                                r.get("cost_file"))))
    cost_block = (Block("cost of the published version's served file (int8: model.int8.onnx, "
                        "fp32: model.onnx; 5 s clip, 1 thread)",
                        ("model", *_COST_HEADERS, "file"), tuple(costs)),) if costs else ()
    blocks = tuple(by_reference) + cost_block
    stacked = []
    for (corpus, split), rows in groups.items():
        body = tuple((_name(names, r) if d == LABELS[0] else "", _DIM[d],
                      _figure(r, f"human_{d}"), _figure(r, f"teacher_{d}"))
                     for r in rows for d in LABELS)
        stacked.append(Block(f"{corpus} · {split} · CCC ({_n_phrase(rows)})",
                             ("model", "dim", "vs human", "vs teacher"), body, left=2))
    return layouts + [
        Layout("by reference", blocks, footnotes),
        Layout("by reference", blocks, footnotes, compact=True),
        Layout("stacked", tuple(stacked) + cost_block, footnotes),
        Layout("stacked", tuple(stacked) + cost_block, footnotes, compact=True),
    ]
