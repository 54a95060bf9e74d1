"""The ``msp-podcast`` recipe (MSP-Podcast release layout).

``Labels/labels_consensus.csv`` has ``FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID,
Gender, Split_Set``; scores run 1-7; audio sits in ``Audios/``. Arousal is ``EmoAct``,
dominance ``EmoDom``, valence ``EmoVal``. ``Split_Set`` maps Train/Development/Test1/Test2
to train/dev/test1/test2 (other values are kept lower-cased). ``SpkrID`` "Unknown" becomes
a missing speaker. ``Gender`` (Female/Male/Unknown) becomes ``audio.gender`` (female/male,
Unknown missing). Audio without a consensus row is ingested unlabeled.
"""

from __future__ import annotations

import csv
import io

from ser_pipeline.recipes import core
from ser_pipeline.recipes.core import Entry, Recipe, RecipeError, Scale
from ser_pipeline.recipes.folder import merge_with_audio
from ser_pipeline.storage import Storage

LABELS_FILE = "Labels/labels_consensus.csv"
AUDIO_DIR = "Audios"
SCALE = Scale(1.0, 7.0)
SPLITS = {"train": "train", "development": "dev", "test1": "test1", "test2": "test2",
          "test": "test"}
REQUIRED = ("FileName", "EmoAct", "EmoVal", "EmoDom")


def prepare_msp_podcast(source: Storage | str, *, include_unlabeled: bool = True,
                        ) -> list[Entry]:
    """Entries for an MSP-Podcast release.

    Raises:
        RecipeError: ``Labels/labels_consensus.csv`` is missing, malformed or lacks a column.
    """
    storage = source if isinstance(source, Storage) else Storage(source)
    text = core.read_text(storage, LABELS_FILE, what="MSP-Podcast label file",
                          fix="point ser ingest at the release root (the folder holding Labels/ "
                              "and Audios/)")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        rows = list(reader)
        header = [h.strip() for h in reader.fieldnames or []]
    except csv.Error as error:
        raise RecipeError(f"{storage.uri(LABELS_FILE)} is not valid CSV (line "
                          f"{reader.line_num}): {error}") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RecipeError(
            f"{storage.uri(LABELS_FILE)} lacks column(s) {', '.join(missing)} (found: "
            f"{', '.join(header) or 'none'}); use the release's labels_consensus.csv")
    entries = []
    for number, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        where = f"{LABELS_FILE} row {number}"
        name = core.clean_relpath(row["FileName"])
        if name is None or "/" in name:
            entries.append(Entry(f"{LABELS_FILE}#row{number}", problem=(
                "bad_path", f"{where}: FileName {row['FileName']!r} is not a file name in "
                f"{AUDIO_DIR}/")))
            continue
        split = row.get("Split_Set") or None
        speaker = row.get("SpkrID") or None
        entry = core.labelled_entry(
            f"{AUDIO_DIR}/{name}",
            {"arousal": row["EmoAct"], "dominance": row["EmoDom"], "valence": row["EmoVal"]},
            scale=SCALE, where=where,
            speaker=None if (speaker or "").lower() == "unknown" else speaker,
            split=SPLITS.get(split.lower(), split.lower()) if split else None,
            gender=row.get("Gender"),
        )
        entry.extra["where"] = where
        if row.get("EmoClass"):
            entry.extra["emo_class"] = row["EmoClass"]
        entries.append(entry)
    return merge_with_audio(storage, entries, audio_roots=(AUDIO_DIR,),
                            include_unlabeled=include_unlabeled)


RECIPE = Recipe("msp-podcast", prepare_msp_podcast)
