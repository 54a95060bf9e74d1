"""Named reports over the analyst database, and a self-contained HTML page of them.

A report is a file ``sql/reports/<name>.sql`` whose header comment documents it::

    -- Title line.
    --
    -- Longer description.
    --
    -- @param corpus  VARCHAR default NULL    What it filters.
    -- @param model   VARCHAR required        A required parameter.

Parameters are **bound** as DuckDB prepared-statement parameters (``$corpus``) and never
formatted into the SQL text, and reports run on a read-only connection, so a parameter
value is always data: ``'; DROP TABLE metrics; --`` is just a corpus nobody has.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings
from ser_pipeline.db import SQL_DIR, connect
from ser_pipeline.schemas import LABELS

REPORTS_DIR = SQL_DIR / "reports"
_PARAM_LINE = re.compile(
    r"^--\s*@param\s+(?P<name>[A-Za-z_]\w*)\s+(?P<type>VARCHAR|INTEGER|DOUBLE|BOOLEAN)\s+"
    r"(?:default\s+(?P<default>NULL|'[^']*'|-?\d+(?:\.\d+)?|true|false)|(?P<required>required))"
    r"\s*(?P<help>.*)$",
    re.IGNORECASE,
)


class ReportError(ValueError):
    """A report cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    required: bool
    help: str


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)
    sql: str = ""


def _default(literal: str | None, type_: str) -> Any:
    if literal is None or literal.upper() == "NULL":
        return None
    if literal.startswith("'"):
        return literal[1:-1]
    return convert_param(literal, type_, name="default")


def convert_param(value: Any, type_: str, *, name: str) -> Any:
    """Convert a (string) parameter value to its declared type, with a clear error."""
    if value is None or not isinstance(value, str):
        return value
    type_ = type_.upper()
    try:
        if type_ == "INTEGER":
            return int(value)
        if type_ == "DOUBLE":
            return float(value)
        if type_ == "BOOLEAN":
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
    except ValueError:
        raise ReportError(f"parameter {name}={value!r} is not a valid {type_}") from None
    return value


def load_report(path: Path) -> Report:
    """Parse a report file's header (title, description, ``@param`` lines)."""
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    params: dict[str, Param] = {}
    prose: list[str] = []
    for line in header:
        match = _PARAM_LINE.match(line)
        if match:
            type_ = match["type"].upper()
            params[match["name"]] = Param(match["name"], type_,
                                          _default(match["default"], type_),
                                          bool(match["required"]), match["help"].strip())
        elif "@param" in line:
            raise ReportError(f"{path}: malformed @param line: {line!r}")
        else:
            prose.append(line[2:].strip())
    used = set(re.findall(r"\$([A-Za-z_]\w*)", text))
    if used != set(params):
        raise ReportError(f"{path}: parameters used ({sorted(used)}) and declared "
                          f"({sorted(params)}) differ")
    title = prose[0] if prose else path.stem
    description = " ".join(p for p in prose[1:] if p).strip()
    return Report(path.stem, title, description, params, text)


def list_reports(reports_dir: Path | None = None) -> dict[str, Report]:
    """Every named report, by name."""
    folder = Path(reports_dir or REPORTS_DIR)
    return {path.stem: load_report(path) for path in sorted(folder.glob("*.sql"))}


def get_report(name: str, reports_dir: Path | None = None) -> Report:
    reports = list_reports(reports_dir)
    if name not in reports:
        raise ReportError(f"no report named {name!r}; reports: {', '.join(reports)}")
    return reports[name]


def parse_param(text: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (the value may contain ``=``).

    Examples:
        >>> parse_param("corpus=msp=podcast")
        ('corpus', 'msp=podcast')
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
        raise ReportError(f"malformed --param {text!r}: write it as NAME=VALUE, "
                          "e.g. --param corpus=msp-podcast")
    return key, value


def bind_params(report: Report, params: dict[str, Any] | None) -> dict[str, Any]:
    """Declared defaults overlaid with ``params``, type-converted; unknown or missing
    required parameters raise :class:`ReportError`."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(report.params))
    if unknown:
        allowed = ", ".join(f"{p.name} ({p.type})" for p in report.params.values()) or "none"
        raise ReportError(f"report {report.name!r} has no parameter {', '.join(unknown)}; "
                          f"its parameters: {allowed}")
    bound = {}
    for name, param in report.params.items():
        if name in params:
            bound[name] = convert_param(params[name], param.type, name=name)
        elif param.required:
            raise ReportError(f"report {report.name!r} needs --param {name}=... ({param.help})")
        else:
            bound[name] = param.default
    return bound


def run_report(db_path: str | Path, name: str, *, params: dict[str, Any] | None = None,
               settings: Settings | None = None) -> tuple[list[str], list[tuple]]:
    """Run a named report on a read-only connection; returns ``(columns, rows)``.

    Raises:
        ReportError: unknown report (lists the existing ones) or bad parameters.
        DatabaseError: the database file does not exist.
    """
    report = get_report(name)
    bound = bind_params(report, params)
    con = connect(db_path, read_only=True, settings=settings)
    try:
        result = con.execute(report.sql, bound)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    finally:
        con.close()
    return columns, rows


# -- output formats -----------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def to_records(columns: list[str], rows: list[tuple]) -> list[dict]:
    return [{c: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def to_json(columns: list[str], rows: list[tuple]) -> str:
    return json.dumps(to_records(columns, rows), indent=2)


def to_csv(columns: list[str], rows: list[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_jsonable(v) for v in row] for row in rows])
    return buffer.getvalue()


# -- readable layouts (terminal, markdown, HTML) ---------------------------------------------
def teacher_intervals(db_path: str | Path, *, params: dict[str, Any] | None = None,
                      settings: Settings | None = None, level: float = 0.95,
                      n_resamples: int = 1000, seed: int = 0) -> dict[tuple, dict[str, Any]]:
    """Bootstrap intervals of the teacher's CCC against the humans, per (corpus, split,
    teacher), from the clips of the ``teacher_vs_human_clips`` report; speakers are
    resampled where the lake knows them. Returns ``{(corpus, split, teacher_id):
    {"human_arousal_lo": ..., ..., "teacher_ci": "95% bootstrap CI over 6 speakers"}}``.
    """
    import numpy as np

    from ser_pipeline.stats import bootstrap_metrics

    wanted = {k: v for k, v in (params or {}).items()
              if k in ("corpus", "split", "teacher_id", "split_name")}
    columns, rows = run_report(db_path, "teacher_vs_human_clips", params=wanted,
                               settings=settings)
    grouped: dict[tuple, list[dict]] = {}
    for record in to_records(columns, rows):
        grouped.setdefault((record["corpus"], record["split"], record["teacher_id"]),
                           []).append(record)
    out = {}
    for key, clips in grouped.items():
        teacher = np.array([[np.nan if c[f"teacher_{d}"] is None else c[f"teacher_{d}"]
                             for d in LABELS] for c in clips], dtype=np.float64)
        human = np.array([[np.nan if c[f"human_{d}"] is None else c[f"human_{d}"]
                           for d in LABELS] for c in clips], dtype=np.float64)
        speakers = [c["speaker"] for c in clips]
        result = bootstrap_metrics(teacher, human, level=level, n_resamples=n_resamples,
                                   seed=seed,
                                   units=speakers if any(speakers) else None)
        entry: dict[str, Any] = {}
        for dimension in LABELS:
            ccc = result.dimension(dimension).ccc
            entry[f"human_{dimension}_lo"] = None if np.isnan(ccc.lo) else float(ccc.lo)
            entry[f"human_{dimension}_hi"] = None if np.isnan(ccc.hi) else float(ccc.hi)
        r = result.resampling
        entry["teacher_ci"] = f"{100 * r.level:g}% bootstrap CI over {r.n_units} {r.unit}s"
        out[key] = entry
    return out


def paper_table_records(db_path: str | Path, *, params: dict[str, Any] | None = None,
                        settings: Settings | None = None) -> list[dict]:
    """The ``paper_table`` report's rows, the teacher rows with their bootstrap interval
    (:func:`teacher_intervals`) added; ``teacher_ci`` says how it was obtained (None on
    student rows, whose interval columns come from ``metrics``)."""
    columns, rows = run_report(db_path, "paper_table", params=params, settings=settings)
    records = [record | {"teacher_ci": None} for record in to_records(columns, rows)]
    if any(r["kind"] == "teacher" for r in records):
        intervals = teacher_intervals(db_path, params=params, settings=settings)
        for record in records:
            if record["kind"] == "teacher":
                record.update(intervals.get((record["corpus"], record["split"],
                                             record["teacher_id"]), {}))
    return records


def report_layouts(name: str, columns: list[str], rows: list[tuple], *,
                   wide: bool = False) -> list[Any]:
    """Candidate terminal/markdown/HTML layouts of a report's result
    (:mod:`ser_pipeline.report_tables`): the paper table, the leaderboard and the
    robustness report have their own; any other report is one table or, when too wide,
    one block per row."""
    from ser_pipeline import report_tables

    records = to_records(columns, rows)
    if name == "paper_table":
        return report_tables.paper_layouts(records, wide=wide)
    if name == "leaderboard" and rows:
        return report_tables.leaderboard_layouts(records)
    if name == "robustness" and rows:
        return report_tables.robustness_layouts(records)
    return report_tables.generic_layouts(columns, rows, title=name)


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


# -- HTML ---------------------------------------------------------------------------------
def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(records: list[dict]) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['student']}\n{r['corpus']}" for r in records]
    x = np.arange(len(records))
    width = 0.8 / len(LABELS)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(records) + 2), 3.6))
    for index, dimension in enumerate(LABELS):
        values = [r[f"ccc_{dimension}"] if r[f"ccc_{dimension}"] is not None else np.nan
                  for r in records]
        axis.bar(x + (index - 1) * width, values, width, label=dimension)
    axis.set_xticks(x, labels, fontsize=8)
    axis.set_ylabel("CCC")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_title("Best CCC per student and dimension")
    axis.legend(fontsize=8)
    return figure


def _scatter(records: list[dict], model: str) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LABELS), figsize=(10, 3.4), sharex=True, sharey=True)
    for axis, dimension in zip(axes, LABELS, strict=True):
        points = [(r["teacher"], r["student"]) for r in records if r["dimension"] == dimension]
        if points:
            teacher, student = zip(*points, strict=True)
            axis.scatter(teacher, student, s=10, alpha=0.6)
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        axis.set_title(dimension)
        axis.set_xlabel("teacher")
    axes[0].set_ylabel("student")
    figure.suptitle(f"Student vs teacher per clip: {model}")
    return figure


def _size(records: list[dict]) -> Any:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for record in records:
        if record["model_params"] and record["ccc_mean"] is not None:
            axis.scatter(record["model_params"], record["ccc_mean"])
            axis.annotate(str(record["student"]), (record["model_params"], record["ccc_mean"]),
                          fontsize=8, xytext=(4, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("parameters (log scale)")
    axis.set_ylabel("mean CCC (A, D, V)")
    axis.set_title("Model size vs CCC")
    return figure


#: Page style: the body is at most 1240 px wide and every table at most as wide as the body
#: (cells wrap, intervals take a second line), so the page fits a 1280 px window.
MAX_WIDTH_PX = 1240
_STYLE = f"""*{{box-sizing:border-box}}
body{{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 20px;color:#222;
max-width:{MAX_WIDTH_PX}px}}
table{{border-collapse:collapse;font-size:13px;max-width:100%;margin:0.3em 0 1em}}
th,td{{border:1px solid #ccc;padding:3px 7px;overflow-wrap:anywhere}}
th{{background:#f0f0f0}}td.r{{text-align:right;white-space:nowrap}}td.l{{text-align:left}}
caption{{text-align:left;font-weight:600;padding:0.2em 0}}
.ci{{display:block;color:#666;font-size:11px}}
img{{max-width:100%;height:auto;display:block;margin:1em 0}}.note{{color:#666}}
ul.footnotes{{color:#555;font-size:12px;overflow-wrap:anywhere}}"""


def write_html_report(db_path: str | Path, out_html: str | Path, *, split: str = "test",
                      reference: str = "teacher", settings: Settings | None = None) -> dict:
    """Write a self-contained HTML page: the paper's table (``paper_table``, every split)
    at the top, the leaderboard, the robustness results, and three PNG plots embedded as
    base64 (CCC bars per student and dimension, student-vs-teacher scatter of the best
    model, size vs CCC). Plots without data are replaced by a note. Tables use the layouts
    of :mod:`ser_pipeline.report_tables` (short names, ids in footnotes, intervals on a
    second line), so the page fits a 1280 px window without scrolling sideways.

    Returns:
        ``{"html": path, "images": n, "leaderboard_rows": n, "paper_table_rows": n,
        "robustness_rows": n, "notes": [...]}``.
    """
    import matplotlib

    from ser_pipeline import report_tables

    matplotlib.use("Agg")
    params = {"split": split, "reference": reference}
    columns, rows = run_report(db_path, "leaderboard", params=params, settings=settings)
    leaderboard = to_records(columns, rows)
    size_columns, size_rows = run_report(db_path, "size_vs_ccc", params=params,
                                         settings=settings)
    sizes = to_records(size_columns, size_rows)
    paper = paper_table_records(db_path, settings=settings)
    robustness_columns, robustness_rows = run_report(db_path, "robustness", settings=settings)
    sections, notes, images = [], [], 0

    def image(title: str, figure: Any) -> None:
        nonlocal images
        images += 1
        sections.append(f"<h2>{html.escape(title)}</h2>"
                        f'<img alt="{html.escape(title)}" src="data:image/png;base64,'
                        f'{_png(figure)}">')

    def note(title: str, text: str) -> None:
        notes.append(text)
        sections.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(text)}</p>")

    if leaderboard:
        image("CCC per student and dimension", _bars(leaderboard))
    else:
        note("CCC per student and dimension",
             f"no {reference} metrics on split {split!r} yet: run 'ser evaluate'")
    best = max((r for r in leaderboard if r["ccc_mean"] is not None),
               key=lambda r: r["ccc_mean"], default=None)
    pairs = []
    if best is not None:
        pair_columns, pair_rows = run_report(
            db_path, "student_vs_teacher",
            params={"model": best["model"], "teacher_id": best["teacher_id"],
                    "split": None if split == "all" else split},
            settings=settings)
        pairs = to_records(pair_columns, pair_rows)
    if pairs:
        image(f"Student vs teacher ({best['model']})", _scatter(pairs, best["model"]))
    else:
        note("Student vs teacher", "no predictions with teacher labels to plot")
    if any(r["model_params"] and r["ccc_mean"] is not None for r in sizes):
        image("Model size vs CCC", _size(sizes))
    else:
        note("Model size vs CCC", "no evaluated model records its parameter count")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ser-pipeline report</title>"
        f"<style>{_STYLE}</style></head><body><h1>ser-pipeline evaluation report</h1>"
        f"<p>Database: {html.escape(str(db_path))} &middot; split: {html.escape(split)} "
        f"&middot; reference: {html.escape(reference)} &middot; CCC = concordance "
        "correlation coefficient (population statistics, audmetric)</p>"
        "<h2>The paper's table</h2><p>Per corpus and split: the teacher against the human "
        "labels; each student against the humans and against its teacher (A / D / V, with "
        "intervals); parameters, int8 size, ms per 5 s clip on one thread and peak RSS of "
        "its published version (<code>ser report paper_table</code>).</p>"
        + (report_tables.html(report_tables.paper_layouts(paper)) if paper
           else "<p class='note'>no labels or metrics yet</p>")
        + f"<h2>Leaderboard</h2><p>split: {html.escape(split)}, reference: "
        f"{html.escape(reference)} (<code>ser report leaderboard</code>)</p>"
        + (report_tables.html(report_tables.leaderboard_layouts(leaderboard)) if rows
           else "<p class='note'>no metrics yet</p>")
        + "<h2>Robustness</h2><p>CCC under seeded perturbations of the dev clips, beside "
        "audEERING ser-tests' thresholds (<code>ser robustness</code>, <code>ser report "
        "robustness</code>).</p>"
        + (report_tables.html(report_tables.robustness_layouts(
            to_records(robustness_columns, robustness_rows))) if robustness_rows
           else "<p class='note'>no robustness results yet: run 'ser robustness --model "
                "registry://NAME' (or 'ser distill', which runs it for each published "
                "student), then 'ser db build'</p>")
        + "".join(sections) + "</body></html>"
    )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"html": str(out), "images": images, "leaderboard_rows": len(rows),
            "paper_table_rows": len(paper), "robustness_rows": len(robustness_rows),
            "notes": notes}
