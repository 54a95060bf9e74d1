"""Corpus recipes, Lhotse style: one module per corpus, each ``prepare_<name>()``.

A recipe reads a corpus' own layout and label files and returns a list of
:class:`Entry`: which audio files to ingest (paths relative to the corpus root), their
human labels normalised to 0..1 in the order arousal, dominance, valence, and speaker
and split where the corpus has them. Recipes never decode audio; ingest does.

Problems with one file (label out of range, audio missing, duplicate label rows, a
directory named ``x.wav``...) become an entry with ``problem`` set, which ingest turns
into a quarantine row. Problems with the corpus as a whole (label file missing,
unparseable, a required column absent) raise :class:`RecipeError` before any work starts,
with a message naming the file and how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ser_pipeline.schemas import LABELS
from ser_pipeline.storage import Storage

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
     ".au", ".snd", ".caf", ".w64", ".rf64"}
)


class RecipeError(ValueError):
    """The corpus as a whole cannot be read; the message names the file and the fix."""


@dataclass
class Entry:
    """One file a recipe wants ingested (JSON-able via :meth:`to_dict`)."""

    source_path: str  # relative to the corpus root, '/'-separated
    arousal: float | None = None  # 0..1, normalised from ``source_scale``
    dominance: float | None = None
    valence: float | None = None
    source_scale: str | None = None  # e.g. "1-7"
    speaker: str | None = None
    split: str | None = None
    size: int | None = None  # bytes, when the listing knows it (used to shard duplicates)
    problem: tuple[str, str] | None = None  # (reason, message): quarantine, don't read
    extra: dict = field(default_factory=dict)

    @property
    def has_labels(self) -> bool:
        return any(v is not None for v in (self.arousal, self.dominance, self.valence))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["problem"] = list(self.problem) if self.problem else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        data = dict(data)
        if data.get("problem"):
            data["problem"] = tuple(data["problem"])
        return cls(**data)


@dataclass(frozen=True)
class Scale:
    """A linear label scale ``[low, high]`` mapped to 0..1."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            raise RecipeError(
                f"invalid label scale {self.low}..{self.high}: the maximum must be greater "
                "than the minimum (set --label-min/--label-max)"
            )

    @property
    def name(self) -> str:
        separator = ".." if self.low < 0 else "-"  # "1-7", but "-1..1"
        return f"{self.low:g}{separator}{self.high:g}"

    def normalise(self, value: object, *, where: str, dimension: str) -> float | None:
        """``value`` in 0..1, ``None`` for an empty cell.

        Raises:
            LabelValueError: not a number, or outside the scale.
        """
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise LabelValueError(
                "label_invalid",
                f"{where}: {dimension}={value!r} is not a number; fix the cell or leave it "
                "empty for an unlabeled file",
            ) from None
        if math.isnan(number):
            return None
        if not self.low <= number <= self.high:
            raise LabelValueError(
                "label_out_of_range",
                f"{where}: {dimension}={number:g} is outside the label scale {self.name}; fix "
                "the value or pass the right --label-min/--label-max",
            )
        return (number - self.low) / (self.high - self.low)


class LabelValueError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def labelled_entry(source_path: str, values: dict[str, object], *, scale: Scale, where: str,
                   speaker: str | None = None, split: str | None = None) -> Entry:
    """An entry with A/D/V normalised by ``scale``, or a quarantine entry if a value is bad."""
    entry = Entry(source_path=source_path, speaker=speaker or None, split=split or None)
    try:
        normalised = {d: scale.normalise(values.get(d), where=where, dimension=d) for d in LABELS}
    except LabelValueError as error:
        entry.problem = (error.reason, error.message)
        return entry
    entry.arousal, entry.dominance, entry.valence = (normalised[d] for d in LABELS)
    if entry.has_labels:
        entry.source_scale = scale.name
    return entry


def merge_with_audio(storage: Storage, labelled: list[Entry], *,
                     audio_roots: tuple[str, ...] = ("",),
                     include_unlabeled: bool = True) -> list[Entry]:
    """Join label entries with the audio found under ``audio_roots``.

    Files with labels keep them; audio without labels joins as unlabeled entries (the
    teacher's pool) when ``include_unlabeled``; labels naming a file that is not there
    become ``missing_file`` quarantine entries; duplicate label rows for one file become
    ``duplicate_label`` entries.
    """
    from ser_pipeline.recipes.folder import walk_audio

    found = {e.source_path: e for root in audio_roots for e in walk_audio(storage, root)}
    by_path: dict[str, Entry] = {}
    for entry in labelled:
        previous = by_path.get(entry.source_path)
        if previous is not None:
            first = previous.extra.get("where", "an earlier row")
            by_path[entry.source_path] = Entry(
                source_path=entry.source_path,
                problem=("duplicate_label",
                         f"{entry.extra.get('where', 'a row')} labels {entry.source_path!r} "
                         f"again ({first} did too); keep one row per file"),
            )
            continue
        by_path[entry.source_path] = entry
    result: list[Entry] = []
    for path, entry in by_path.items():
        listed = found.pop(path, None)
        if entry.problem is None and listed is None:
            entry.problem = ("missing_file", f"{entry.extra.get('where', 'the label file')} "
                             f"names {path!r} but no such audio file exists under the corpus "
                             "root")
        elif listed is not None:
            entry.size = listed.size
            if listed.problem and entry.problem is None:
                entry.problem = listed.problem
        result.append(entry)
    if include_unlabeled:
        result.extend(found.values())
    return sorted(result, key=lambda e: e.source_path)


def read_text(storage: Storage, relative: str, *, what: str, fix: str) -> str:
    """A corpus text file, or a :class:`RecipeError` naming it and how to fix it."""
    try:
        data = storage.read_bytes(relative)
    except (FileNotFoundError, IsADirectoryError):
        raise RecipeError(f"{what} {storage.uri(relative)} is missing; {fix}") from None
    except PermissionError as error:
        raise RecipeError(f"cannot read {what} {storage.uri(relative)}: {error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RecipeError(
            f"{what} {storage.uri(relative)} is not UTF-8 text (byte {error.start}); "
            "re-save it as UTF-8") from None


def clean_relpath(path: str) -> str | None:
    """A '/'-separated path relative to the corpus root, or ``None`` if it escapes it."""
    import posixpath

    path = path.strip().replace("\\", "/")
    if not path or path.startswith("/") or "://" in path:
        return None
    path = posixpath.normpath(path)
    if path == "." or path.startswith("../") or path == "..":
        return None
    return path


def _registry() -> dict[str, Callable[..., list[Entry]]]:
    from ser_pipeline.recipes.audformat import prepare_audformat
    from ser_pipeline.recipes.csv import prepare_csv
    from ser_pipeline.recipes.folder import prepare_folder
    from ser_pipeline.recipes.iemocap import prepare_iemocap
    from ser_pipeline.recipes.msp_podcast import prepare_msp_podcast

    return {"folder": prepare_folder, "csv": prepare_csv, "audformat": prepare_audformat,
            "msp-podcast": prepare_msp_podcast, "iemocap": prepare_iemocap}


RECIPES: tuple[str, ...] = ("folder", "csv", "audformat", "msp-podcast", "iemocap")


def get_recipe(name: str) -> Callable[..., list[Entry]]:
    """The ``prepare_*`` function registered under a CLI name."""
    recipes = _registry()
    if name not in recipes:
        raise RecipeError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return recipes[name]


__all__ = ["AUDIO_EXTENSIONS", "Entry", "RECIPES", "RecipeError", "Scale", "get_recipe",
           "clean_relpath", "labelled_entry", "merge_with_audio", "read_text"]
