"""What every recipe shares: the :class:`Entry` a recipe returns, label scales, errors,
path and text helpers, and the :class:`Recipe` record each recipe module registers.
"""

from __future__ import annotations

import inspect
import math
import posixpath
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
    gender: str | None = None  # the speaker's, normalised by normalise_gender
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


#: Spellings corpora use for the two genders their sheets record, to one vocabulary.
_GENDERS = {"f": "female", "female": "female", "w": "female", "woman": "female",
            "m": "male", "male": "male", "man": "male"}
_UNKNOWN = {"", "unknown", "u", "n/a", "na", "none", "null", "nan", "?", "-"}


def normalise_gender(value: object) -> str | None:
    """A speaker's gender as the lake stores it (``audio.gender``): ``female`` or
    ``male`` for the usual spellings, other values lower-cased as given (a corpus may
    record more), ``None`` when empty or unknown.

    Examples:
        >>> [normalise_gender(v) for v in ("F", "Male", " female ", "Unknown", None, "X")]
        ['female', 'male', 'female', None, None, 'x']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in _UNKNOWN:
        return None
    return _GENDERS.get(text, text)


def labelled_entry(source_path: str, values: dict[str, object], *, scale: Scale, where: str,
                   speaker: str | None = None, split: str | None = None,
                   gender: object = None) -> Entry:
    """An entry with A/D/V normalised by ``scale``, or a quarantine entry if a value is bad."""
    entry = Entry(source_path=source_path, speaker=speaker or None, split=split or None,
                  gender=normalise_gender(gender))
    try:
        normalised = {d: scale.normalise(values.get(d), where=where, dimension=d) for d in LABELS}
    except LabelValueError as error:
        entry.problem = (error.reason, error.message)
        return entry
    entry.arousal, entry.dominance, entry.valence = (normalised[d] for d in LABELS)
    if entry.has_labels:
        entry.source_scale = scale.name
    return entry


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
    path = path.strip().replace("\\", "/")
    if not path or path.startswith("/") or "://" in path:
        return None
    path = posixpath.normpath(path)
    if path == "." or path.startswith("../") or path == "..":
        return None
    return path


@dataclass(frozen=True)
class Recipe:
    """A corpus recipe as ``ser ingest --recipe <name>`` knows it.

    Each recipe module defines one (``RECIPE``) next to its ``prepare_*`` function;
    :data:`ser_pipeline.recipes.RECIPES` is built from them.
    """

    name: str
    prepare: Callable[..., list[Entry]]

    @property
    def options(self) -> frozenset[str]:
        """The keyword options ``prepare`` takes besides the corpus root."""
        return frozenset(inspect.signature(self.prepare).parameters) - {"source"}
