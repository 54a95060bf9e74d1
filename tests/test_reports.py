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
            "ingest_health", "label_drift", "student_vs_teacher", "paper_table"}


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
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 24
    # and the value really reaches the query as a value: a matching row comes back
    with connect(db, read_only=False) as con:
        con.execute("INSERT INTO metrics (model, corpus, split, reference, dimension, ccc, "
                    "model_key, evaluated_at) VALUES ('m', $c, 'test', 'teacher', 'arousal', "
                    "0.5, 'k', now())", {"c": evil})
    columns, rows = run_report(db, "leaderboard", params={"corpus": evil})
    assert [r[columns.index("corpus")] for r in rows] == [evil]
    with connect(db, read_only=False) as con:
        con.execute("DELETE FROM metrics WHERE model = 'm'")
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 24


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
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 24
    html = tmp_path / "cli.html"
    result = runner.invoke(app, ["report", "--html", str(html), "--db", str(db)])
    assert result.exit_code == 0 and html.read_text().count("data:image/png;base64,") == 3
