"""Cells of the report tables: figures with their intervals, blocks, layouts.

Also the helpers every layout builder shares to read records (a figure from its
``<prefix>``, ``_lo``, ``_hi`` columns; grouping; the interval and ``n`` phrases).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = "–"
#: Short labels of the perturbations (``ser_pipeline.perturb`` names) for narrow tables.
PERTURBATION_LABELS = {
    "noise_snr20db": "noise 20 dB", "noise_snr10db": "noise 10 dB",
    "noise_snr5db": "noise 5 dB", "telephone": "telephone",
    "gain_minus20db": "gain -20 dB", "gain_plus6db_clipped": "gain +6 dB clip",
    "room_rt60_500ms": "room RT60 0.5 s", "tilt_minus3db_per_oct": "tilt -3 dB/oct",
}
_DIM = {"arousal": "A", "dominance": "D", "valence": "V"}


@dataclass(frozen=True)
class Figure:
    """A value with its interval (either bound may be unknown)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None

    def text(self, *, digits: int = 3, compact: bool = False) -> str:
        value = finite(self.value)
        if value is None:
            return MISSING
        places = 2 if compact else digits
        main = _fixed(value, places)
        lo, hi = finite(self.lo), finite(self.hi)
        if lo is None or hi is None:
            return main
        if compact:
            return f"{main} [{_bare(lo, places)},{_bare(hi, places)}]"
        return f"{main} [{_fixed(lo, places)}, {_fixed(hi, places)}]"

    def parts(self, *, digits: int = 3) -> tuple[str, str]:
        """``(value, interval)`` for a two-line HTML cell."""
        full = self.text(digits=digits)
        value, _, interval = full.partition(" ")
        return value, interval


Cell = str | int | float | Figure | None


@dataclass(frozen=True)
class Block:
    """One table: a title, headers, rows; the first ``left`` columns are text.

    ``fold_last``: the last column may fold onto several lines (free text); every other
    cell prints on one line, whole.
    """

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    left: int = 1
    notes: tuple[str, ...] = ()
    fold_last: bool = False


@dataclass(frozen=True)
class Layout:
    """Blocks and footnotes; ``compact`` prints figures as ``0.94 [.92,.96]``."""

    name: str
    blocks: tuple[Block, ...]
    footnotes: tuple[str, ...] = ()
    compact: bool = False


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (None, bools, text, NaN
    and infinities print as missing).

    Examples:
        >>> finite("0.5"), finite(float("nan")), finite(True), finite(None)
        (0.5, None, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fixed(value: float, places: int) -> str:
    """``value`` to ``places`` decimals, without a minus on a value that rounds to zero."""
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _bare(value: float, places: int) -> str:
    """``0.92`` -> ``.92``, ``-0.05`` -> ``-.05`` (for compact intervals)."""
    text = _fixed(value, places)
    if text.startswith("0."):
        return text[1:]
    if text.startswith("-0."):
        return "-" + text[2:]
    return text


def cell_text(cell: Cell, *, compact: bool = False) -> str:
    """A cell as text: figures with their interval, integers with thousands separators.

    Examples:
        >>> cell_text(10897), cell_text(120.46), cell_text(None), cell_text(True)
        ('10,897', '120.5', '–', 'yes')
    """
    if isinstance(cell, Figure):
        return cell.text(compact=compact)
    if cell is None:
        return MISSING
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, int):
        return f"{cell:,}"
    if isinstance(cell, float):
        return MISSING if not math.isfinite(cell) else f"{cell:,.1f}"
    return str(cell)


# -- records ------------------------------------------------------------------------------
def _figure(record: Mapping[str, Any], prefix: str) -> Figure:
    return Figure(record.get(prefix), record.get(f"{prefix}_lo"), record.get(f"{prefix}_hi"))


def _groups(records: Iterable[Mapping[str, Any]], keys: Sequence[str]
            ) -> dict[tuple, list[Mapping[str, Any]]]:
    grouped: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(tuple(record.get(k) for k in keys), []).append(record)
    return grouped


def _interval_phrase(records: Sequence[Mapping[str, Any]]) -> str:
    levels = {r.get("ci_level") for r in records if r.get("ci_level")}
    units = {r.get("ci_unit") for r in records if r.get("ci_unit")}
    if not levels:
        return "no intervals recorded"
    level = f"{100 * max(levels):g}%"
    counts = sorted({int(r["ci_units"]) for r in records if r.get("ci_units")})
    over = "/".join(sorted(units)) + "s" if units else "units"
    span = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}") if counts \
        else "?"
    return f"{level} bootstrap CI over {span} {over}"


def _n_phrase(records: Sequence[Mapping[str, Any]]) -> str:
    counts = sorted({int(r["n"]) for r in records if r.get("n") is not None})
    if not counts:
        return "n=?"
    return f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]}"
