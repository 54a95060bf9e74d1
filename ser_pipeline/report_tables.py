"""Report tables readable anywhere: an 80-column terminal, a pipe, markdown and HTML.

A report's records become candidate :class:`Layout` s, from the widest (everything in one
block per corpus) to the most compact (one line per model and dimension). Each layout is a
list of titled :class:`Block` s and footnotes; long ids live in the footnotes, so rows carry
short names. The terminal gets the first layout whose widest block fits the console
(:func:`fit`), so ``COLUMNS=80 ser report paper_table`` and piped output print every
number; markdown and HTML get the widest layout, HTML with intervals on a second line of
each cell so that the page fits 1280 px.

CCC cells are :class:`Figure` s: a value with its interval, printed ``0.940 [0.921,
0.955]`` or, compactly, ``0.94 [.92,.96]``.

Examples:
    >>> Figure(0.9401, 0.9212, 0.9553).text()
    '0.940 [0.921, 0.955]'
    >>> Figure(0.9401, 0.9212, 0.9553).text(compact=True)
    '0.94 [.92,.96]'
    >>> Figure(-0.031, -0.052, 0.004).text(compact=True)
    '-0.03 [-.05,.00]'
    >>> Figure(None).text(), Figure(0.5).text(), Figure(-0.0004, -0.003, 0.002).text()
    ('–', '0.500', '0.000 [-0.003, 0.002]')
    >>> block = Block("demo · dev", ("model", "A"), (("wav2small", Figure(0.94, 0.92, 0.96)),))
    >>> print(markdown([Layout("wide", (block,), ("wav2small: run wav2small-1",))]))
    **demo · dev**
    <BLANKLINE>
    | model | A |
    |---|---:|
    | wav2small | 0.940 [0.920, 0.960] |
    <BLANKLINE>
    - wav2small: run wav2small-1
"""

from __future__ import annotations

import html as html_lib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ser_pipeline.schemas import LABELS

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
        value = _finite(self.value)
        if value is None:
            return MISSING
        places = 2 if compact else digits
        main = _fixed(value, places)
        lo, hi = _finite(self.lo), _finite(self.hi)
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


def _finite(value: Any) -> float | None:
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


# -- terminal -----------------------------------------------------------------------------
def rich_table(block: Block, *, compact: bool = False) -> Any:
    """A rich ``Table`` for one block (cells printed as written: no markup)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                  collapse_padding=True, show_edge=False)
    last = len(block.headers) - 1
    for index, header in enumerate(block.headers):
        fold = block.fold_last and index == last
        table.add_column(Text(header), justify="left" if index < block.left else "right",
                         no_wrap=not fold, overflow="fold" if fold else "ellipsis",
                         min_width=min(20, max(len(header), 1)) if fold else None)
    for row in block.rows:
        table.add_row(*(Text(cell_text(cell, compact=compact)) for cell in row))
    return table


def block_width(block: Block, *, compact: bool = False) -> int:
    """The width the block's table needs to print without cutting a cell."""
    from rich.console import Console

    console = Console(width=100_000)
    return console.measure(rich_table(block, compact=compact)).maximum


def layout_width(layout: Layout) -> int:
    """The widest block's width (a folding column counts at its narrowest)."""
    widths = []
    for block in layout.blocks:
        if block.fold_last:
            from rich.console import Console

            console = Console(width=100_000)
            widths.append(console.measure(rich_table(block, compact=layout.compact)).minimum)
        else:
            widths.append(block_width(block, compact=layout.compact))
    return max(widths, default=0)


def fit(layouts: Sequence[Layout], width: int) -> Layout:
    """The first layout whose widest block fits ``width`` columns (else the last one).

    Examples:
        >>> rows = (("a-long-model-name", Figure(0.9, 0.8, 1.0), Figure(0.5, 0.4, 0.6)),)
        >>> wide = Layout("wide", (Block("t", ("model", "A", "V"), rows),))
        >>> narrow = Layout("compact", wide.blocks, compact=True)
        >>> fit([wide, narrow], 100).name, fit([wide, narrow], 50).name
        ('wide', 'compact')
    """
    for layout in layouts:
        if layout_width(layout) <= width:
            return layout
    return layouts[-1]


def print_layout(layout: Layout, console: Any) -> None:
    """Print the blocks and footnotes; long footnotes fold, they are never cut."""
    from rich.text import Text

    for index, block in enumerate(layout.blocks):
        if index:
            console.print()
        console.print(Text(block.title, style="bold", overflow="fold"))
        console.print(rich_table(block, compact=layout.compact))
        for note in block.notes:
            console.print(Text(note, overflow="fold"))
    if layout.footnotes:
        console.print()
    for note in layout.footnotes:
        console.print(Text(note, overflow="fold"))


# -- markdown and HTML --------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(layouts: Sequence[Layout]) -> str:
    """GitHub-flavoured markdown of the first (widest) layout, with full intervals."""
    layout = layouts[0]
    parts = []
    for block in layout.blocks:
        lines = [f"**{_md(block.title)}**", "",
                 "| " + " | ".join(_md(h) for h in block.headers) + " |",
                 "|" + "|".join("---" if i < block.left else "---:"
                                for i in range(len(block.headers))) + "|"]
        lines += ["| " + " | ".join(_md(cell_text(c)) for c in row) + " |" for row in block.rows]
        lines += [f"\n{_md(note)}" for note in block.notes]
        parts.append("\n".join(lines))
    text = "\n\n".join(parts)
    if layout.footnotes:
        text += "\n\n" + "\n".join(f"- {_md(note)}" for note in layout.footnotes)
    return text


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Figure):
        value, interval = cell.parts()
        if not interval:
            return html_lib.escape(value)
        return (f"{html_lib.escape(value)}<span class='ci'>{html_lib.escape(interval)}"
                "</span>")
    return html_lib.escape(cell_text(cell))


def html(layouts: Sequence[Layout], *, css_class: str = "compact") -> str:
    """HTML tables of the first (widest) layout; intervals go on a second line."""
    layout = layouts[0]
    out = []
    for block in layout.blocks:
        head = "".join(f"<th>{html_lib.escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(f"<td class='{'l' if i < block.left else 'r'}'>{_html_cell(c)}</td>"
                             for i, c in enumerate(row)) + "</tr>"
            for row in block.rows)
        out.append(f"<table class='{css_class}'><caption>{html_lib.escape(block.title)}"
                   f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        out += [f"<p class='note'>{html_lib.escape(note)}</p>" for note in block.notes]
    if layout.footnotes:
        items = "".join(f"<li>{html_lib.escape(note)}</li>" for note in layout.footnotes)
        out.append(f"<ul class='footnotes'>{items}</ul>")
    return "".join(out)


# -- the paper's table ----------------------------------------------------------------------
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
    return (int(params) if params is not None else None, _finite(record.get("int8_kb")),
            _finite(record.get("ms_per_5s")), _finite(record.get("peak_rss_mb")))


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


# -- the leaderboard ----------------------------------------------------------------------
def leaderboard_layouts(records: Sequence[Mapping[str, Any]]) -> list[Layout]:
    """Candidate layouts of the ``leaderboard`` report: one block per (reference, corpus,
    split, teacher) with short student names; ids in footnotes. Intervals are shown when
    the report has ``ccc_<dimension>_lo``/``_hi`` columns."""
    teachers = sorted({str(r["teacher_id"]) for r in records if r.get("teacher_id")})
    tag = {t: (f"teacher-{i + 1}" if len(teachers) > 1 else "teacher")
           for i, t in enumerate(teachers)}
    footnotes = [f"{tag[t]} = {t}" for t in teachers]
    models: dict[str, list[str]] = {}
    for record in records:
        models.setdefault(str(record.get("student")), [])
        if record.get("model") and str(record["model"]) not in models[str(record["student"])]:
            models[str(record["student"])].append(str(record["model"]))
    footnotes += [f"{student} = {', '.join(ids)}" for student, ids in models.items()
                  if ids and ids != [student]]
    footnotes.insert(0, "ranked by the mean of the A, D, V CCCs (global CCC over all clips)")
    dims = [_DIM[d] for d in LABELS]
    blocks, stacked = [], []
    for (reference, corpus, split, teacher), rows in _groups(
            records, ("reference", "corpus", "split", "teacher_id")).items():
        title = (f"{corpus} · {split} · vs {reference}"
                 + (f" ({tag[str(teacher)]})" if reference == "teacher" and len(tag) > 1
                    else "")
                 + f" · {_n_phrase(rows)}")
        blocks.append(Block(title, ("#", "student", "mean", *dims, "params"), tuple(
            (str(i + 1), str(r.get("student")), Figure(r.get("ccc_mean"), r.get("ccc_mean_lo"),
                                                        r.get("ccc_mean_hi")),
             *(_figure(r, f"ccc_{d}") for d in LABELS),
             int(r["model_params"]) if r.get("model_params") is not None else None)
            for i, r in enumerate(rows)), left=2))
        stacked.append(Block(title, ("#", "student", "dim", "CCC", "params"), tuple(
            (str(i + 1) if d == "mean" else "", str(r.get("student")) if d == "mean" else "",
             d if d == "mean" else _DIM[d],
             Figure(r.get("ccc_mean"), r.get("ccc_mean_lo"), r.get("ccc_mean_hi"))
             if d == "mean" else _figure(r, f"ccc_{d}"),
             (int(r["model_params"]) if r.get("model_params") is not None else None)
             if d == "mean" else "")
            for i, r in enumerate(rows) for d in ("mean", *LABELS)), left=3))
    notes = tuple(footnotes)
    return [Layout("one block per reference", tuple(blocks), notes),
            Layout("one block per reference", tuple(blocks), notes, compact=True),
            Layout("stacked", tuple(stacked), notes, compact=True)]


# -- robustness -----------------------------------------------------------------------------
def _verdict(record: Mapping[str, Any]) -> str:
    if record.get("passed"):
        return "pass"
    failed = [name for name, key in (("drop", "passed_drop"), ("unch.", "passed_unchanged"))
              if not record.get(key)]
    return "FAIL " + "+".join(failed)


def _share(value: Any) -> str:
    number = _finite(value)
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


# -- any report ---------------------------------------------------------------------------
def generic_layouts(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                    title: str = "") -> list[Layout]:
    """Any report: one table, or, when it is too wide, one ``column | value`` block per
    row (every value printed, as ``psql``'s expanded display)."""
    from ser_pipeline.reports import format_value

    table = Block(title, tuple(columns),
                  tuple(tuple(format_value(v) for v in row) for row in rows),
                  left=len(columns))
    records = tuple(Block(f"{title} · row {i + 1}", ("column", "value"),
                          tuple((c, format_value(v)) for c, v in zip(columns, row,
                                                                     strict=True)),
                          left=2, fold_last=True) for i, row in enumerate(rows))
    return [Layout("table", (table,)), Layout("records", records)]


__all__ = ["Block", "Figure", "Layout", "cell_text", "fit", "generic_layouts", "html",
           "leaderboard_layouts", "markdown", "paper_layouts", "print_layout", "rich_table",
           "robustness_layouts"]
