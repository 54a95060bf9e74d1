"""The ``audformat`` recipe: an audformat database (``db.yaml`` plus tables).

Filewise tables contribute files; columns named ``arousal``, ``dominance``, ``valence``
(or whose scheme has that name) are the labels, a ``speaker`` column the speaker, a
``gender`` (or ``sex``) column the speaker's gender, else a ``gender`` field of the speaker
scheme's labels (a dict per speaker, or a misc table), and the table's split
(``table.split_id`` -> the split's ``type``) the split. The label scale is the scheme's
``minimum``/``maximum``; ``--label-min/--label-max`` are the fallback for schemes without a
range. Segmented tables are not ingested (ingest works on whole files); they are reported
in the error only when the database has no filewise table at all.
"""

from __future__ import annotations

import os
import tempfile

from ser_pipeline.recipes import core
from ser_pipeline.recipes.core import Entry, Recipe, RecipeError, Scale
from ser_pipeline.recipes.folder import merge_with_audio
from ser_pipeline.schemas import LABELS
from ser_pipeline.storage import Storage

#: Column / scheme / field names that hold a speaker's gender.
_GENDER_NAMES = ("gender", "sex")


def _load(storage: Storage):
    try:
        import audformat
    except ImportError:
        raise RecipeError("the audformat recipe needs the audformat package: "
                          "pip install audformat") from None

    if not storage.exists("db.yaml"):
        raise RecipeError(f"{storage.uri('db.yaml')} is missing; point ser ingest at the "
                          "audformat database root (the folder holding db.yaml)")
    try:
        if storage.is_local:
            return audformat.Database.load(storage.root, load_data=True)
        with tempfile.TemporaryDirectory() as tmp:  # header and tables only, not the audio
            for name in storage.list(""):
                if name.startswith("db."):
                    with open(os.path.join(tmp, name), "wb") as handle:
                        handle.write(storage.read_bytes(name))
            return audformat.Database.load(tmp, load_data=True)
    except RecipeError:
        raise
    except Exception as error:  # audformat raises many types for a broken database
        raise RecipeError(f"cannot load the audformat database at {storage.url}: "
                          f"{type(error).__name__}: {error}") from None


def _column_dimension(column_id: str, scheme_id: str | None) -> str | None:
    for name in (column_id, scheme_id or ""):
        if name.lower() in LABELS:
            return name.lower()
    return None


def prepare_audformat(
    source: Storage | str,
    *,
    label_min: float | None = None,
    label_max: float | None = None,
    include_unlabeled: bool = True,
) -> list[Entry]:
    """Entries for an audformat database.

    Raises:
        RecipeError: no ``db.yaml``, a database audformat cannot load, no filewise table, or
            a label scheme without a range and no ``--label-min/--label-max``.
    """
    storage = source if isinstance(source, Storage) else Storage(source)
    db = _load(storage)
    tables = [(tid, t) for tid, t in db.tables.items() if t.type == "filewise"]
    if not tables:
        raise RecipeError(f"the audformat database at {storage.url} has no filewise table "
                          f"(tables: {', '.join(db.tables) or 'none'}); ingest needs one")
    per_file: dict[str, dict] = {}
    for table_id, table in tables:
        split = None
        if table.split_id and table.split_id in db.splits:
            split = db.splits[table.split_id].type or table.split_id
        dimensions: dict[str, tuple[str, Scale]] = {}
        speaker_column = gender_column = None
        speaker_genders: dict[str, object] = {}
        for column_id, column in table.columns.items():
            dimension = _column_dimension(column_id, column.scheme_id)
            if dimension:
                scheme = db.schemes.get(column.scheme_id) if column.scheme_id else None
                low = getattr(scheme, "minimum", None)
                high = getattr(scheme, "maximum", None)
                low = label_min if low is None else low
                high = label_max if high is None else high
                if low is None or high is None:
                    raise RecipeError(
                        f"table {table_id!r} column {column_id!r}: its scheme has no "
                        "minimum/maximum; give the scale with --label-min/--label-max")
                dimensions[dimension] = (column_id, Scale(float(low), float(high)))
            elif column_id.lower() == "speaker" or (column.scheme_id or "") == "speaker":
                speaker_column = column_id
                speaker_genders = _speaker_genders(db, column.scheme_id)
            elif column_id.lower() in _GENDER_NAMES or (column.scheme_id or "") in _GENDER_NAMES:
                gender_column = column_id
        frame = table.get()
        for file, row in frame.iterrows():
            rel = core.clean_relpath(str(file))
            record = per_file.setdefault(rel or str(file), {"values": {}, "split": None,
                                                            "speaker": None, "scales": {},
                                                            "gender": None,
                                                            "where": f"table {table_id!r}"})
            if rel is None:
                record["bad"] = True
            for dimension, (column_id, scale) in dimensions.items():
                value = row[column_id]
                if value is not None and value == value:  # not NaN
                    record["values"][dimension] = value
                    record["scales"][dimension] = scale
            if speaker_column is not None and row[speaker_column] == row[speaker_column]:
                record["speaker"] = str(row[speaker_column])
                record["gender"] = core.normalise_gender(speaker_genders.get(record["speaker"]))
            if gender_column is not None:
                record["gender"] = core.normalise_gender(row[gender_column]) or record["gender"]
            record["split"] = record["split"] or split
    entries = []
    for path, record in sorted(per_file.items()):
        where = f"{record['where']} file {path!r}"
        if record.get("bad"):
            entries.append(Entry(path, problem=("bad_path", f"{where}: the path is outside the "
                                                "database root")))
            continue
        scales = set(record["scales"].values())
        if len(scales) > 1:  # one source_scale per row: normalise each dimension separately
            entry = Entry(path, speaker=record["speaker"], split=record["split"],
                          gender=record["gender"])
            try:
                for dimension, value in record["values"].items():
                    setattr(entry, dimension, record["scales"][dimension].normalise(
                        value, where=where, dimension=dimension))
            except ValueError as error:
                entry.problem = (getattr(error, "reason", "label_invalid"), str(error))
            entry.source_scale = ",".join(f"{d}:{record['scales'][d].name}"
                                          for d in LABELS if d in record["scales"])
        else:
            scale = next(iter(scales)) if scales else Scale(0.0, 1.0)
            entry = core.labelled_entry(path, record["values"], scale=scale, where=where,
                                        speaker=record["speaker"], split=record["split"],
                                        gender=record["gender"])
        entry.extra["where"] = where
        entries.append(entry)
    return merge_with_audio(storage, entries, include_unlabeled=include_unlabeled)


def _speaker_genders(db: object, scheme_id: str | None) -> dict[str, object]:
    """``{speaker: gender}`` from the speaker scheme's labels: a dict per speaker with a
    ``gender``/``sex`` field, or a misc table with such a column (audformat's two ways)."""
    scheme = db.schemes.get(scheme_id) if scheme_id else None  # type: ignore[attr-defined]
    labels = getattr(scheme, "labels", None)
    if isinstance(labels, dict):
        return {str(speaker): next((v for k, v in info.items() if k.lower() in _GENDER_NAMES),
                                   None)
                for speaker, info in labels.items() if isinstance(info, dict)}
    misc = getattr(db, "misc_tables", {})
    if isinstance(labels, str) and labels in misc:
        frame = misc[labels].get()
        column = next((c for c in frame.columns if str(c).lower() in _GENDER_NAMES), None)
        if column is not None:
            return {str(speaker): value for speaker, value in frame[column].items()}
    return {}


__all__ = ["prepare_audformat"]


RECIPE = Recipe("audformat", prepare_audformat)
