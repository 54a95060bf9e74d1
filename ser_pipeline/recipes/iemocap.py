"""The ``iemocap`` recipe (IEMOCAP release layout).

``SessionN/dialog/EmoEvaluation/*.txt`` holds one line per utterance::

    [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]

The bracket is ``[V, A, D]`` on 1-5; the lake stores arousal, dominance, valence, so the
recipe reorders it. Audio is ``SessionN/sentences/wav/<dialog>/<utt>.wav``. The speaker
is the session plus the utterance speaker's gender (``Ses01F_impro01_M000`` -> ``Ses01M``),
and that letter (before the final digits) is the speaker's gender (``M`` -> ``male``).
IEMOCAP has no official split (leave-one-session-out is customary), so ``split`` is empty.
Only ``sentences/wav`` is walked: the full-dialog recordings in ``dialog/wav`` are not
utterances.
"""

from __future__ import annotations

import re

from ser_pipeline.recipes import core
from ser_pipeline.recipes.core import Entry, Recipe, RecipeError, Scale
from ser_pipeline.recipes.folder import merge_with_audio
from ser_pipeline.storage import Storage

SCALE = Scale(1.0, 5.0)
_LINE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\t(?P<utt>[^\t]+)\t(?P<cat>[^\t]+)\t"
    r"\[\s*(?P<v>[^,\]]+),\s*(?P<a>[^,\]]+),\s*(?P<d>[^,\]]+)\]\s*$"
)
_UTT = re.compile(r"^(Ses\d\d)[MF]_(.+)_([MF])\d+[a-z]?$")


def _session_dirs(storage: Storage) -> list[str]:
    return [d for d in storage.list_dirs() if re.fullmatch(r"Session\d+", d)]


def prepare_iemocap(source: Storage | str, *, include_unlabeled: bool = True) -> list[Entry]:
    """Entries for an IEMOCAP release root (the folder holding ``Session1`` ...).

    Raises:
        RecipeError: no ``SessionN`` folders, or a session has no EmoEvaluation files.
    """
    storage = source if isinstance(source, Storage) else Storage(source)
    sessions = _session_dirs(storage)
    if not sessions:
        raise RecipeError(f"{storage.url} has no Session1..Session5 folders; point ser ingest "
                          "at the IEMOCAP release root")
    entries: list[Entry] = []
    for session in sessions:
        evaluation = f"{session}/dialog/EmoEvaluation"
        sheets = storage.list(evaluation, suffix=".txt")
        if not sheets:
            raise RecipeError(f"{storage.uri(evaluation)} has no *.txt evaluation files; the "
                              "session folder is incomplete")
        for sheet in sheets:
            text = core.read_text(storage, sheet, what="IEMOCAP evaluation file",
                                  fix="restore it from the release")
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.startswith("["):
                    continue
                where = f"{sheet} line {number}"
                match = _LINE.match(line)
                fields = line.split("\t")
                utt = (match["utt"] if match else (fields[1] if len(fields) > 1 else "")).strip()
                if not _UTT.match(utt):
                    raise RecipeError(f"{storage.uri(sheet)} line {number} is not an IEMOCAP "
                                      f"evaluation line: {line[:80]!r}")
                dialog = utt.rsplit("_", 1)[0]
                path = f"{session}/sentences/wav/{dialog}/{utt}.wav"
                speaker = utt[:5] + utt.rsplit("_", 1)[1][0]
                gender = core.normalise_gender(_UTT.match(utt)[3])  # type: ignore[index]
                if not match:
                    entry = Entry(path, speaker=speaker, gender=gender, problem=(
                        "label_invalid", f"{where}: expected '[start - end]<TAB>utt<TAB>cat"
                        f"<TAB>[V, A, D]', got {line[:80]!r}"))
                else:
                    entry = core.labelled_entry(
                        path, {"arousal": match["a"], "dominance": match["d"],
                               "valence": match["v"]},
                        scale=SCALE, where=where, speaker=speaker, gender=gender)
                    entry.extra["category"] = match["cat"]
                entry.extra["where"] = where
                entries.append(entry)
    roots = tuple(f"{s}/sentences/wav" for s in sessions if storage.isdir(f"{s}/sentences/wav"))
    merged = merge_with_audio(storage, entries, audio_roots=roots,
                              include_unlabeled=include_unlabeled)
    for entry in merged:  # unlabeled utterances still get their speaker and gender
        match = _UTT.match(entry.source_path.rsplit("/", 1)[-1].removesuffix(".wav"))
        if entry.speaker is None and match:
            entry.speaker = match[1] + match[3]
        if entry.gender is None and match:
            entry.gender = core.normalise_gender(match[3])
    return merged


RECIPE = Recipe("iemocap", prepare_iemocap)
