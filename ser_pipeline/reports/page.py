"""The self-contained HTML page: the paper's table, the leaderboard, the robustness
results and the plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings
from ser_pipeline.reports.catalog import run_report
from ser_pipeline.reports.formats import to_records
from ser_pipeline.reports.layouts import paper_table_records
from ser_pipeline.reports.plots import _bars, _png, _scatter, _size

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
