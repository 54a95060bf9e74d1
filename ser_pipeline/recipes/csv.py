"""The ``csv`` recipe: a sidecar table of paths with optional labels.

Columns: ``path`` (relative to the corpus root; the name is configurable) and any of
``arousal``, ``dominance``, ``valence``, ``speaker``, ``split``, ``gender`` (the speaker's:
``F``/``M``/``female``/``male``..., see :func:`~ser_pipeline.recipes.core.normalise_gender`;
it feeds the fairness slices of ``ser evaluate``). Labels are on the scale
``label_min..label_max`` (CLI ``--label-min/--label-max``, default 0..1) and are
normalised linearly to 0..1. Empty label cells mean "unlabeled". Audio under the root
that the sheet does not list is ingested unlabeled unless ``include_unlabeled=False``.
"""

from __future__ import annotations

import csv
import io

from ser_pipeline.recipes import core
from ser_pipeline.recipes.core import Entry, Recipe, RecipeError, Scale
from ser_pipeline.recipes.folder import merge_with_audio
from ser_pipeline.schemas import LABELS
from ser_pipeline.storage import Storage


def prepare_csv(
    source: Storage | str,
    *,
    labels: str = "labels.csv",
    path_column: str = "path",
    label_min: float | None = None,
    label_max: float | None = None,
    include_unlabeled: bool = True,
) -> list[Entry]:
    """Entries from a CSV sidecar.

    Args:
        source: the corpus root.
        labels: the sheet, relative to the root.
        path_column: the column holding audio paths (relative to the root).
        label_min: the scale's minimum (default 0).
        label_max: the scale's maximum (default 1).
        include_unlabeled: also ingest audio the sheet does not list.

    Raises:
        RecipeError: the sheet is missing, not CSV, or lacks the path column.
    """
    storage = source if isinstance(source, Storage) else Storage(source)
    scale = Scale(0.0 if label_min is None else float(label_min),
                  1.0 if label_max is None else float(label_max))
    where_file = storage.uri(labels)
    text = core.read_text(
        storage, labels, what="label sheet",
        fix="pass --labels NAME (relative to the corpus root) or use --recipe folder")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = list(reader)
    except csv.Error as error:
        raise RecipeError(f"{where_file} is not valid CSV (line {reader.line_num}): {error}; "
                          "fix the quoting on that line") from None
    if path_column not in header:
        raise RecipeError(
            f"{where_file} has no {path_column!r} column (found: {', '.join(header) or 'none'}); "
            f"add it or pass --path-column NAME")
    reader_fields = reader.fieldnames or []
    entries: list[Entry] = []
    for number, raw in enumerate(rows, start=2):  # row 1 is the header
        row = {k.strip(): v for k, v in raw.items() if k is not None}
        where = f"{labels} row {number}"
        if None in raw or any(v is None for v in raw.values()):
            got = len([v for v in raw.values() if v is not None]) + len(raw.get(None) or [])
            path = core.clean_relpath(row.get(path_column) or "") or f"{labels}#row{number}"
            entries.append(Entry(path, problem=(
                "label_invalid", f"{where} has {got} fields but the header has "
                f"{len(reader_fields)}; fix that row")))
            continue
        path = core.clean_relpath(row[path_column])
        if path is None:
            entries.append(Entry(f"{labels}#row{number}", problem=(
                "bad_path", f"{where}: path {row[path_column]!r} is empty or outside the corpus "
                "root; use a path relative to the root")))
            continue
        entry = core.labelled_entry(path, {d: row.get(d) for d in LABELS}, scale=scale, where=where,
                                    speaker=(row.get("speaker") or "").strip() or None,
                                    split=(row.get("split") or "").strip() or None,
                                    gender=row.get("gender"))
        entry.extra["where"] = where
        entries.append(entry)
    return merge_with_audio(storage, entries, include_unlabeled=include_unlabeled)


RECIPE = Recipe("csv", prepare_csv)
