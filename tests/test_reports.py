"""Named reports, parameter binding (no injection), the HTML page and the CLI."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from eval_lake import evaluated_lake
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.db import DatabaseError, build_db, connect
from ser_pipeline.reports import (
    ReportError,
    list_reports,
    parse_param,
    run_report,
    write_html_report,
)

EXPECTED = {"leaderboard", "teacher_vs_human", "size_vs_ccc", "label_coverage",
            "ingest_health", "label_drift", "student_vs_teacher", "paper_table",
            "model_comparison"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    lake, _ = evaluated_lake(str(root / "lake"), n=12)
    return Path(build_db(lake, out=root / "ser.duckdb")["db"])


def test_every_report_is_documented_and_runs(db: Path) -> None:
    reports = list_reports()
    assert set(reports) >= EXPECTED
    for name, report in reports.items():
        assert report.title and report.description, name
        assert all(p.help for p in report.params.values()), name
        columns, rows = run_report(db, name)
        assert columns and rows, f"{name} returned no rows on the small lake"


def test_report_values(db: Path) -> None:
    columns, rows = run_report(db, "leaderboard", params={"reference": "teacher"})
    board = [dict(zip(columns, r, strict=True)) for r in rows]
    assert {(r["student"], r["model"]) for r in board} == {("feature", "model-a"),
                                                          ("other", "model-b")}
    assert all(r["split"] == "test" and r["n"] == 4 for r in board)
    mean = (board[0]["ccc_arousal"] + board[0]["ccc_dominance"] + board[0]["ccc_valence"]) / 3
    assert board[0]["ccc_mean"] == pytest.approx(mean)
    assert board[0]["ccc_mean"] >= board[1]["ccc_mean"]
    # intervals beside every CCC, and the per-speaker mean beside the global figure
    report = list_reports()["leaderboard"]
    assert "sorted by global CCC" in report.title and "speaker" in report.title
    assert "GLOBAL CCC" in report.description and "never used to sort" in report.description
    with connect(db) as con:
        speaker_means = dict(con.execute(
            "SELECT model, avg(ccc) FROM latest_metrics WHERE aggregation = 'speaker_mean' "
            "AND split = 'test' AND reference = 'teacher' GROUP BY model").fetchall())
    for row in board:
        for d in ("arousal", "dominance", "valence"):
            assert row[f"ccc_{d}_lo"] <= row[f"ccc_{d}"] <= row[f"ccc_{d}_hi"]
        assert (row["ci_level"], row["ci_unit"], row["ci_units"]) == (0.95, "speaker", 2)
        assert row["speaker_ccc_mean"] == pytest.approx(speaker_means[row["model"]])
    columns, rows = run_report(db, "model_comparison")
    compared = [dict(zip(columns, r, strict=True)) for r in rows]
    assert [(r["model_a"], r["model_b"], r["dimension"]) for r in compared] == [
        ("model-a", "model-b", d) for d in ("arousal", "dominance", "valence", "mean")]
    for r in compared:
        assert r["delta"] == pytest.approx(r["ccc_a"] - r["ccc_b"])
        assert r["verdict"] == ("better" if r["delta_lo"] > 0 else "worse"
                                if r["delta_hi"] < 0 else "not distinguishable")
        assert (r["split"], r["purpose"], r["ci_unit"]) == ("test", "compare", "speaker")
    assert run_report(db, "model_comparison", params={"model_a": "model-b"})[1] == []
    columns, rows = run_report(db, "label_coverage")
    assert [dict(zip(columns, r, strict=True)) for r in rows] == [{
        "corpus": "toy", "teacher_id": "toy-teacher", "clips": 12, "with_teacher_labels": 12,
        "without_teacher_labels": 0, "teacher_coverage_pct": 100.0, "with_human_labels": 12}]
    columns, rows = run_report(db, "label_coverage", params={"teacher_id": "new-teacher"})
    assert rows[0][columns.index("with_teacher_labels")] == 0
    columns, rows = run_report(db, "ingest_health")
    health = dict(zip(columns, rows[0], strict=True))
    assert (health["reason"], health["quarantined"], health["ingested"]) == ("truncated", 1, 12)
    columns, rows = run_report(db, "teacher_vs_human")
    assert [r[columns.index("dimension")] for r in rows] == ["arousal", "dominance", "valence"]
    assert all(0.9 < r[columns.index("ccc")] <= 1 for r in rows)  # teacher = human + 5% noise
    columns, rows = run_report(db, "size_vs_ccc", params={"split": "dev"})
    assert [r[columns.index("model_params")] for r in rows] == [72_000, 2_500_000]
    columns, rows = run_report(db, "label_drift", params={"teacher_id": "toy-teacher"})
    assert {r[columns.index("clips")] for r in rows} == {12}


def test_paper_table_rows(db: Path, tmp_path: Path) -> None:
    import shutil

    import audmetric
    import numpy as np

    from ser_pipeline.db import upsert_model

    own = tmp_path / "paper.duckdb"  # the registry writes into `models`: keep the fixture's
    shutil.copy(db, own)
    with connect(own, read_only=False) as con:  # intervals as evaluate records them
        con.execute("UPDATE metrics SET aggregation = 'global', ccc_lo = ccc - 0.05, "
                    "ccc_hi = least(ccc + 0.03, 1), ci_level = 0.95, ci_method = 'percentile', "
                    "ci_unit = 'speaker', ci_units = 2, ci_resamples = 1000")
        # a per-speaker mean row beside each global one: not the paper's figure
        con.execute("INSERT INTO metrics SELECT * REPLACE ('speaker_mean' AS aggregation, "
                    "0.99 AS ccc) FROM metrics")
    upsert_model(own, {
        "name": "toy-a", "version": 1, "run_id": "model-a", "params": 72_000,
        "uri": "registry://toy-a@1", "published_at": "2026-01-01T00:00:00+00:00",
        "files": {"model.onnx": {"bytes": 300_000}, "model.int8.onnx": {"bytes": 120_500}},
        "performance": {"int8": {"latency_ms": 9.5, "peak_rss_increase_mb": 8.0}}})
    columns, rows = run_report(own, "paper_table")
    table = [dict(zip(columns, r, strict=True)) for r in rows]
    assert {(r["split"], r["kind"], r["model"]) for r in table} >= {
        ("test", "teacher", "toy-teacher"), ("test", "student", "feature"),
        ("test", "student", "other"), ("dev", "student", "feature")}
    with connect(own) as con:
        pairs = con.execute(
            "SELECT t.arousal, h.arousal FROM teacher_labels t JOIN human_labels h "
            "USING (audio_id) JOIN splits s USING (audio_id) WHERE s.split = 'test'"
        ).fetchall()
    teacher, human = np.array(pairs).T
    test_teacher = next(r for r in table if (r["split"], r["kind"]) == ("test", "teacher"))
    assert test_teacher["human_arousal"] == pytest.approx(
        audmetric.concordance_cc(human, teacher), abs=1e-9)
    assert test_teacher["n"] == len(pairs) and test_teacher["teacher_mean"] is None
    for reference in ("teacher", "human"):
        columns_b, rows_b = run_report(own, "leaderboard",
                                       params={"split": "test", "reference": reference})
        for board in (dict(zip(columns_b, r, strict=True)) for r in rows_b):
            row = next(r for r in table if (r["split"], r["model"]) == ("test",
                                                                        board["student"]))
            for dimension in ("arousal", "dominance", "valence"):
                assert row[f"{reference}_{dimension}"] == pytest.approx(
                    board[f"ccc_{dimension}"])
    published = next(r for r in table if (r["split"], r["model"]) == ("test", "feature"))
    assert (published["params"], published["int8_kb"], published["ms_per_5s"],
            published["peak_rss_mb"], published["published_as"]) == (
        72_000, 120.5, 9.5, 8.0, "registry://toy-a@1")
    assert published["cost_file"] == "model.int8.onnx"  # no serving decision: int8, as then
    assert published["model_id"] == "model-a"
    assert published["teacher_arousal_lo"] == pytest.approx(published["teacher_arousal"] - 0.05)
    assert (published["ci_level"], published["ci_unit"], published["ci_units"]) == (
        0.95, "speaker", 2)
    unpublished = next(r for r in table if (r["split"], r["model"]) == ("test", "other"))
    assert unpublished["params"] == 2_500_000 and unpublished["int8_kb"] is None
    # a newer version serving fp32 (manifest schema 2): the cost is the served file's
    upsert_model(own, {
        "name": "toy-a", "version": 2, "provenance": {"run_id": "model-a"}, "params": 72_000,
        "published_at": "2026-02-01T00:00:00+00:00",
        "files": {"model.onnx": {"bytes": 300_000}, "model.int8.onnx": {"bytes": 120_500}},
        "serving": {"default_file": "model.onnx", "fp32_ms": 5.9, "int8_ms": 9.4},
        "performance": {"fp32": {"latency_ms": 6.0, "peak_rss_increase_mb": 7.0},
                        "int8": {"latency_ms": 9.5, "peak_rss_increase_mb": 8.0}}})
    columns, rows = run_report(own, "paper_table", params={"split": "test"})
    served = next(dict(zip(columns, r, strict=True)) for r in rows
                  if r[columns.index("model")] == "feature")
    assert (served["ms_per_5s"], served["peak_rss_mb"], served["cost_file"],
            served["published_as"]) == (6.0, 7.0, "model.onnx", "registry://toy-a@2")
    _, dev_rows = run_report(own, "paper_table", params={"split": "dev"})
    assert dev_rows and {r[columns.index("split")] for r in dev_rows} == {"dev"}
    assert run_report(own, "paper_table", params={"corpus": "'; DROP TABLE models; --"})[1] == []


def test_injection_through_params_is_data(db: Path) -> None:
    evil = "'; DROP TABLE metrics; --"
    for report, param in (("leaderboard", "corpus"), ("teacher_vs_human", "corpus"),
                          ("ingest_health", "stage")):
        columns, rows = run_report(db, report, params={param: evil})
        assert rows == []
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 48
    # and the value really reaches the query as a value: a matching row comes back
    with connect(db, read_only=False) as con:
        con.execute("INSERT INTO metrics (model, corpus, split, reference, dimension, ccc, "
                    "model_key, evaluated_at) VALUES ('m', $c, 'test', 'teacher', 'arousal', "
                    "0.5, 'k', now())", {"c": evil})
    columns, rows = run_report(db, "leaderboard", params={"corpus": evil})
    assert [r[columns.index("corpus")] for r in rows] == [evil]
    with connect(db, read_only=False) as con:
        con.execute("DELETE FROM metrics WHERE model = 'm'")
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 48


def test_bad_report_requests_get_clear_errors(db: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no report named 'leaderbord'; reports: .*leaderboard"):
        run_report(db, "leaderbord")
    with pytest.raises(ReportError, match="has no parameter colour; its parameters: split"):
        run_report(db, "leaderboard", params={"colour": "red"})
    with pytest.raises(ReportError, match="max_rows='many' is not a valid INTEGER"):
        run_report(db, "student_vs_teacher", params={"max_rows": "many"})
    with pytest.raises(ReportError, match="malformed --param 'corpus'"):
        parse_param("corpus")
    with pytest.raises(ReportError, match="malformed"):
        parse_param("=x")
    assert parse_param("split=dev") == ("split", "dev")
    with pytest.raises(DatabaseError, match="ser db build"):
        run_report(tmp_path / "none.duckdb", "leaderboard")


def test_html_report_embeds_decodable_pngs(db: Path, tmp_path: Path) -> None:
    summary = write_html_report(db, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert summary["images"] == len(images) == 3
    for data in images:
        png = base64.b64decode(data, validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert "model-a" in page and "<table class='compact'>" in page
    # the paper's table comes first, with a row per (corpus, split, model)
    assert page.index("The paper's table") < page.index("<h2>Leaderboard</h2>")
    assert summary["paper_table_rows"] == len(run_report(db, "paper_table")[1]) > 0
    assert "http://" not in page and "https://" not in page  # self-contained


def test_html_report_on_an_empty_database_says_so(tmp_path: Path) -> None:
    from ser_pipeline.lake import Lake

    out = build_db(Lake.open(str(tmp_path / "empty")), out=tmp_path / "e.duckdb")["db"]
    summary = write_html_report(out, tmp_path / "empty.html")
    assert summary["images"] == 0 and len(summary["notes"]) == 3
    assert "ser evaluate" in (tmp_path / "empty.html").read_text()


def test_cli_report(db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", "leaderboard", "--db", str(db), "--format", "json",
                                 "--param", "reference=human"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["reference"] for r in rows} == {"human"} and len(rows) == 2
    result = runner.invoke(app, ["report", "size_vs_ccc", "--db", str(db), "--format", "csv"])
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith("model,student")
    result = runner.invoke(app, ["report", "--db", str(db)])
    assert result.exit_code == 0 and all(name in result.output for name in EXPECTED)
    result = runner.invoke(app, ["report", "nope", "--db", str(db)])
    assert result.exit_code == 2 and "leaderboard" in result.output
    result = runner.invoke(app, ["report", "leaderboard", "--db", str(db), "--param", "split"])
    assert result.exit_code == 2 and "malformed --param 'split'" in result.output
    result = runner.invoke(app, ["report", "leaderboard", "--db", str(db), "--param",
                                 "corpus='; DROP TABLE metrics; --"])
    assert result.exit_code == 0
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 48
    html = tmp_path / "cli.html"
    result = runner.invoke(app, ["report", "--html", str(html), "--db", str(db)])
    assert result.exit_code == 0 and html.read_text().count("data:image/png;base64,") == 3


# -- readable layouts: 80 columns, markdown, 1280 px HTML ---------------------------------
LONG = "-20261203T190704-1f0712"


@pytest.fixture(scope="module")
def demo_like(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture database made to look like the demo's: run ids as long as real ones,
    metrics with the interval columns evaluate fills, a published version of model-a."""
    import shutil

    from ser_pipeline.db import upsert_model

    own = tmp_path_factory.mktemp("demo-like") / "ser.duckdb"
    shutil.copy(db, own)
    with connect(own, read_only=False) as con:
        con.execute("UPDATE metrics SET model = model || $long, run_id = run_id || $long, "
                    "aggregation = 'global', ccc_lo = ccc - 0.051, "
                    "ccc_hi = least(ccc + 0.033, 1), ci_level = 0.95, "
                    "ci_method = 'percentile', ci_unit = 'speaker', ci_units = 2, "
                    "ci_resamples = 1000", {"long": LONG})
    upsert_model(own, {
        "name": "ser-feature", "version": 1, "provenance": {"run_id": f"model-a{LONG}"},
        "params": 72_000, "published_at": "2026-01-01T00:00:00+00:00",
        "files": {"model.onnx": {"bytes": 300_000}, "model.int8.onnx": {"bytes": 120_500}},
        "serving": {"default_file": "model.int8.onnx"},
        "performance": {"fp32": {"latency_ms": 6.0, "peak_rss_increase_mb": 7.0},
                        "int8": {"latency_ms": 9.5, "peak_rss_increase_mb": 8.0}}})
    return own


def _numbers(records: list[dict], columns: list[str], digits: int = 2,
             bare_bounds: bool = False) -> list[str]:
    """The figures as a table prints them: ``digits`` decimals; compact intervals print
    their bounds without the leading zero (``[.92,.96]``)."""
    out = []
    for record in records:
        for column in columns:
            value = record.get(column)
            if isinstance(value, float):
                text = f"{value:.{digits}f}"
                text = text[1:] if text.startswith("-") and float(text) == 0 else text
                if bare_bounds and column.endswith(("_lo", "_hi")):
                    text = text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) \
                        else text
                    text = ("[" if column.endswith("_lo") else ",") + text
                out.append(text)
    return out


def _printed(records: list[dict], columns: list[str], out: str) -> tuple[list[str], list[str]]:
    """The figures of ``columns`` as the chosen layout prints them, and those missing."""
    compact = re.search(r"\[-?\.\d\d,", out) is not None or not re.search(r"\d\.\d{3}", out)
    wanted = _numbers(records, columns, digits=2 if compact else 3, bare_bounds=compact)
    return wanted, [n for n in wanted if n not in out]


def test_paper_table_prints_every_number_in_80_columns(demo_like: Path, monkeypatch) -> None:
    from ser_pipeline.reports import paper_table_records

    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(app, ["report", "paper_table", "--db", str(demo_like)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert max(map(len, out.splitlines())) <= 80 and "…" not in out
    records = paper_table_records(demo_like)
    figures = [f"{kind}_{d}{end}" for kind in ("human", "teacher")
               for d in ("arousal", "dominance", "valence") for end in ("", "_lo", "_hi")]
    wanted, missing = _printed(records, figures, out)
    assert len(wanted) > 50 and not missing, missing
    assert "72,000" in out and "120.5" in out and "9.5" in out and "int8" in out
    assert f"model-a{LONG}" in out  # the full id, in a footnote
    table_lines = [line for line in out.splitlines()
                   if line.startswith(("feature ", "other ")) and " = " not in line]
    assert table_lines and all(LONG not in line for line in table_lines)  # short names
    teacher = next(r for r in records if r["kind"] == "teacher" and r["split"] == "test")
    assert teacher["human_arousal_lo"] < teacher["human_arousal"] < teacher["human_arousal_hi"]
    assert "teacher vs human: 95% bootstrap CI over" in out.replace("\n", " ")


def test_paper_table_markdown_and_wide(demo_like: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    result = runner.invoke(app, ["report", "paper_table", "--db", str(demo_like), "--format",
                                 "markdown"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert header.count("|") == 12  # model, A/D/V x 2 references, 4 cost columns
    feature = next(line for line in lines if line.startswith("| feature |"))
    assert feature.count(" [") == 6 and "| 72,000 | 120.5 | 9.5 | 8.0 |" in feature
    assert any(line.startswith("- feature = model-a" + LONG) for line in lines)
    wide = runner.invoke(app, ["report", "paper_table", "--db", str(demo_like), "--wide"])
    assert wide.exit_code == 0 and "model id" in wide.stdout
    assert any(f"model-a{LONG}" in line and "72,000" in line
               for line in wide.stdout.splitlines())
    bad = runner.invoke(app, ["report", "paper_table", "--db", str(demo_like), "--format", "x"])
    assert bad.exit_code == 2 and "table, markdown, csv or json" in bad.output


def test_leaderboard_and_any_report_fit_80_columns(demo_like: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    result = runner.invoke(app, ["report", "leaderboard", "--db", str(demo_like)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert max(map(len, out.splitlines())) <= 80 and "…" not in out
    columns, rows = run_report(demo_like, "leaderboard")
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    wanted, missing = _printed(records, [f"ccc_{d}{end}" for d in (
        "mean", "arousal", "dominance", "valence") for end in ("", "_lo", "_hi")], out)
    assert len(wanted) >= 4 * len(records) and not missing, missing
    assert "ranked by the mean" in out and f"model-a{LONG}" in out
    # a report with no layout of its own: a table, or one block per row when too wide
    size = runner.invoke(app, ["report", "size_vs_ccc", "--db", str(demo_like)])
    assert size.exit_code == 0 and "…" not in size.stdout
    assert max(map(len, size.stdout.splitlines())) <= 80
    assert f"model-a{LONG}" in size.stdout and "2500000" in size.stdout


class _Tables(__import__("html.parser").parser.HTMLParser):
    """Each <table>: its rows of cells, each cell a list of text lines (an interval span
    is its own line)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[list[str]]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [""]
            self.tables[-1][-1].append(self._cell)
        elif tag == "span" and self._cell is not None:
            self._cell.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[-1] += data


def test_html_tables_fit_1280_px(demo_like: Path, tmp_path: Path) -> None:
    """Layout facts checked without a browser: short cells, few columns, a bounded page."""
    from ser_pipeline.reports import MAX_WIDTH_PX

    write_html_report(demo_like, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert f"max-width:{MAX_WIDTH_PX}px" in page and MAX_WIDTH_PX <= 1280 - 40
    assert "table{border-collapse:collapse;font-size:13px;max-width:100%" in page
    parser = _Tables()
    parser.feed(page)
    assert len(parser.tables) >= 4  # paper table (2 splits), leaderboard, robustness
    for table in parser.tables:
        widths = [max(len(line) for line in cell) for cell in table[0]]
        for row in table[1:]:
            assert len(row) == len(widths) <= 12
            widths = [max(w, max(len(line) for line in cell)) for w, cell in zip(
                widths, row, strict=True)]
        assert max(widths) <= 24, widths  # no 40-character id in a cell
        # 13 px text is ~7.5 px per character; 14 px padding and border per cell
        assert sum(7.5 * w + 15 for w in widths) <= MAX_WIDTH_PX, widths
    cells = [line for table in parser.tables for row in table for cell in row for line in cell]
    assert all(LONG not in line for line in cells)
    assert f"model-a{LONG}" in page  # in a footnote
    robustness = next(t for t in parser.tables if t[0][0] == ["perturbation"])
    assert [row[0][0] for row in robustness[1:]] == [
        "noise 20 dB", "noise 10 dB", "noise 5 dB", "telephone", "gain -20 dB",
        "gain +6 dB clip", "room RT60 0.5 s", "tilt -3 dB/oct"]


def _scroll_width(page: Path, tmp_path: Path) -> tuple[int, int]:
    """``(scrollWidth, clientWidth)`` of the page in headless Chromium at 1280 px."""
    import shutil
    import subprocess

    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text().replace(
        "</body>", "<script>window.addEventListener('load', () => {"
        "const e = document.documentElement;"
        "document.body.setAttribute('data-scroll', e.scrollWidth);"
        "document.body.setAttribute('data-client', e.clientWidth);});</script></body>"))
    profile = tmp_path / f"chromium-{page.stem}"
    profile.mkdir()
    result = subprocess.run(
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
         "--window-size=1280,2000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180, check=True)
    scroll = re.search(r'data-scroll="(\d+)"', result.stdout)
    client = re.search(r'data-client="(\d+)"', result.stdout)
    assert scroll and client, result.stderr[-500:]
    return int(scroll[1]), int(client[1])


def test_html_report_fits_1280_px_in_chromium(demo_like: Path, tmp_path: Path) -> None:
    import shutil

    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make test installs it; or apt-get install "
                    "chromium): the layout facts are checked without it above")
    write_html_report(demo_like, tmp_path / "report.html")
    scroll, client = _scroll_width(tmp_path / "report.html", tmp_path)
    assert client <= 1280 and scroll <= client, (scroll, client)
    # the probe sees overflow: a page with one wide table (ids that do not wrap) scrolls
    cells = "".join(f"<td style='white-space:nowrap'>w2v2-tiny-s0-ft-demo-281d9b2c3673-{i}</td>"
                    for i in range(12))
    (tmp_path / "wide.html").write_text(f"<html><body><table><tr>{cells}</tr></table>"
                                        "</body></html>")
    assert _scroll_width(tmp_path / "wide.html", tmp_path)[0] > 1280
