"""The analyst DuckDB file: tables, views, the CCC macro, S3 lakes, plain-duckdb access."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from eval_lake import evaluated_lake
from lakes import make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.db import (
    DatabaseError,
    build_db,
    connect,
    empty_relation,
    lake_relation,
    upsert_model,
)
from ser_pipeline.lake import Lake
from ser_pipeline.metrics import ccc

VIEWS = ("audio", "human_labels", "teacher_labels", "splits", "predictions", "quarantine")


@pytest.fixture()
def built(tmp_path: Path, lake_url: str):
    lake, records = evaluated_lake(lake_url)
    summary = build_db(lake, out=tmp_path / "ser.duckdb")
    return lake, records, Path(summary["db"]), summary


def test_tables_and_views_match_the_lake(built) -> None:
    lake, records, db, summary = built
    # Only relabel writes drift reports, so a fresh lake has none yet.
    assert [n.split("'")[1] for n in summary["notices"]] == ["drift"]
    # 2 models x (dev, test) x (teacher, human) x 3 dimensions x (global, speaker_mean)
    assert summary["rows"]["metrics"] == lake.count("metrics") == 48
    assert summary["rows"]["fairness"] == lake.count("fairness") > 0
    assert summary["rows"]["comparisons"] == lake.count("comparisons") == 4
    for view in VIEWS:
        assert summary["rows"][view] == lake.count(view), view
    with connect(db) as con:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables"
                                 ).fetchall())
        assert kinds["metrics"] == kinds["runs"] == kinds["models"] == "BASE TABLE"
        assert all(kinds[v] == "VIEW" for v in VIEWS)
        audio_columns = [r[0] for r in con.execute("DESCRIBE audio").fetchall()]
        assert "audio" not in audio_columns and "audio_id" in audio_columns
        ids = {r[0] for r in con.execute("SELECT audio_id FROM audio").fetchall()}
        assert ids == {r["audio_id"] for r in records}


def test_new_parts_show_in_views_without_rebuild(built) -> None:
    lake, records, db, _ = built
    make_audio_lake(lake.url, n=3, corpus="late", seed=9)
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM audio WHERE corpus = 'late'").fetchall() == [(3,)]


def test_rebuild_is_idempotent_and_keeps_models(built) -> None:
    lake, _, db, first = built
    upsert_model(db, {"name": "wav2small-toy", "version": "1", "provenance": {
        "student": "wav2small", "teacher_id": "toy-teacher", "run_id": "r1"},
        "params": 72_000, "size_bytes": 120_000, "license": {"id": "cc-by-nc-sa-4.0"},
        "published_at": "2025-01-02T03:04:05+00:00"})
    upsert_model(db, {"name": "wav2small-toy", "version": "1", "params": 72_001})
    second = build_db(lake, out=db)
    assert second["rows"] == {**first["rows"], "models": 1}
    with connect(db) as con:
        row = con.execute("SELECT name, version, params, uri, manifest FROM models").fetchall()
    assert row[0][:4] == ("wav2small-toy", "1", 72_001, "registry://wav2small-toy@1")
    assert json.loads(row[0][4])["params"] == 72_001
    with pytest.raises(DatabaseError, match="'name' and 'version'"):
        upsert_model(db, {"name": "x"})


def test_runs_table_from_run_json(built) -> None:
    from ser_pipeline.runs import write_run_meta

    lake, _, db, _ = built
    write_run_meta(lake, "wav2small-20250101T000000-abc123", {
        "student": "wav2small", "student_options": {"channels": 13}, "teacher_id": "toy-teacher",
        "params": 10897, "best_step": 40,
        "best_dev_ccc": {"arousal": 0.5, "dominance": 0.3, "valence": 0.43, "mean": 0.41},
        "corpora": ["toy"], "split_name": "v1"})
    lake.storage.write_bytes("runs/broken-run/run.json", b"{not json")
    summary = build_db(lake, out=db)
    assert summary["rows"]["runs"] == 1
    assert any("broken-run" in n for n in summary["notices"])
    with connect(db) as con:
        assert con.execute("SELECT student, params, best_dev_ccc, corpora FROM runs"
                           ).fetchall() == [("wav2small", 10897, 0.41, ["toy"])]


def test_missing_lake_tables_give_empty_views_with_a_notice(tmp_path: Path, lake_url: str,
                                                            ) -> None:
    lake, _ = make_audio_lake(lake_url, n=2, human_labels=False)
    summary = build_db(lake, out=tmp_path / "partial.duckdb")
    missing = {"human_labels", "teacher_labels", "splits", "predictions", "quarantine",
               "drift", "robustness", "metrics", "fairness", "comparisons"}
    assert {n.split("'")[1] for n in summary["notices"]} == missing
    with connect(summary["db"]) as con:
        for view in missing:
            assert con.execute(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
        columns = [r[0] for r in con.execute("DESCRIBE teacher_labels").fetchall()]
        assert columns[:3] == ["audio_id", "teacher_id", "teacher_sha256"]
        assert con.execute("SELECT count(*) FROM audio").fetchall() == [(2,)]


def test_parts_older_than_a_column_read_it_as_null(tmp_path: Path) -> None:
    """A lake whose every metrics part predates the interval columns (as a lake written
    before them): the table still has every schema column, NULL in those rows, so reports
    that read ccc_lo/ccc_hi or aggregation run on it."""
    import pyarrow as pa

    from ser_pipeline.reports import run_report
    from ser_pipeline.schemas import METRICS

    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=2)
    old = METRICS.names[:METRICS.get_field_index("evaluated_at") + 1]
    row = {"eval_id": "e1", "model": "old-model", "model_key": "k", "model_format": "onnx",
           "student": "wav2small", "teacher_id": "t", "corpus": "toy", "split": "test",
           "reference": "teacher", "dimension": "arousal", "ccc": 0.5, "n": 2}
    table = pa.Table.from_pylist([row], schema=pa.schema([METRICS.field(c) for c in old]))
    lake.storage.write_parquet("metrics/part-old.parquet", table, exclusive=True)
    db = build_db(lake, out=tmp_path / "old.duckdb")["db"]
    with connect(db) as con:
        assert [r[0] for r in con.execute("DESCRIBE metrics").fetchall()] == METRICS.names
        # an old row is a global CCC: the table reads its NULL aggregation as 'global'
        assert con.execute("SELECT ccc, ccc_lo, aggregation FROM metrics").fetchall() == [
            (0.5, None, "global")]
    columns, rows = run_report(db, "paper_table")
    student = dict(zip(columns, rows[0], strict=True))
    assert (student["model"], student["teacher_arousal"], student["teacher_arousal_lo"]) == (
        "wav2small", 0.5, None)


def _relabel(lake: Lake, records: list[dict]) -> dict[str, tuple]:
    """Older, newer and tied label rows for some clips; returns the labels that must win."""
    from datetime import timedelta

    from ser_pipeline.lake import utcnow

    now, then = utcnow() + timedelta(days=1), utcnow() - timedelta(days=400)
    chosen = records[:4]
    teacher_rows, human_rows, winners = [], [], {}
    for index, record in enumerate(chosen):
        base = {"audio_id": record["audio_id"], "teacher_id": "toy-teacher", "n_windows": 1,
                "run_id": "relabel"}
        newest = (0.1 * index, 0.2, 0.3)
        teacher_rows += [
            {**base, "teacher_sha256": "1" * 64, "arousal": 0.9, "dominance": 0.9,
             "valence": 0.9, "labeled_at": then},                        # older: loses
            {**base, "teacher_sha256": "2" * 64, "arousal": newest[0], "dominance": newest[1],
             "valence": newest[2], "labeled_at": now},                   # newest: wins
            {**base, "teacher_sha256": "3" * 64, "arousal": 0.8, "dominance": 0.8,
             "valence": 0.8, "labeled_at": now},                         # tie, higher sha: loses
        ]
        human_rows += [
            {"audio_id": record["audio_id"], "corpus": "toy", "arousal": 0.05 * index,
             "dominance": 0.5, "valence": 0.5, "source_scale": "0-1", "ingested_at": now},
            {"audio_id": record["audio_id"], "corpus": "toy", "arousal": 0.99,
             "dominance": 0.99, "valence": 0.99, "source_scale": "0-1", "ingested_at": then},
        ]
        winners[record["audio_id"]] = (newest, (0.05 * index, 0.5, 0.5))
    lake.write_part("teacher_labels", teacher_rows, key="relabel-test")
    lake.write_part("human_labels", human_rows, key="rehuman-test")
    return winners


def test_latest_label_views_keep_one_newest_row_per_key(built) -> None:
    import audmetric

    from ser_pipeline.reports import run_report

    lake, records, db, _ = built
    winners = _relabel(lake, records)
    with connect(db) as con:
        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        # more raw rows than keys, and exactly one row per key in the views
        assert rows("SELECT count(*) FROM teacher_labels")[0][0] == len(records) + 12
        assert rows("SELECT count(*), count(DISTINCT (teacher_id, audio_id)) "
                    "FROM latest_teacher_labels") == [(len(records), len(records))]
        assert rows("SELECT count(*), count(DISTINCT audio_id) FROM latest_human_labels"
                    ) == [(len(records), len(records))]
        teacher = {r[0]: r[1:] for r in rows(
            "SELECT audio_id, arousal, dominance, valence FROM latest_teacher_labels")}
        human = {r[0]: r[1:] for r in rows(
            "SELECT audio_id, arousal, dominance, valence FROM latest_human_labels")}
        for audio_id, (newest_teacher, newest_human) in winners.items():
            assert teacher[audio_id] == pytest.approx(newest_teacher), audio_id
            assert human[audio_id] == pytest.approx(newest_human), audio_id
        predicted = rows("SELECT model, count(DISTINCT audio_id) FROM predictions GROUP BY 1")
    # the reports read the same rows: one pair per clip, the newest labels
    columns, found = run_report(db, "teacher_vs_human")
    by_dimension = {r[columns.index("dimension")]: r for r in found}
    ids = sorted(teacher)
    for index, dimension in enumerate(("arousal", "dominance", "valence")):
        row = by_dimension[dimension]
        assert row[columns.index("n")] == len(records)
        assert row[columns.index("ccc")] == pytest.approx(audmetric.concordance_cc(
            [human[i][index] for i in ids], [teacher[i][index] for i in ids]), abs=1e-9)
    columns, found = run_report(db, "paper_table", params={"split": "test"})
    teacher_row = next(r for r in found if r[columns.index("kind")] == "teacher")
    assert teacher_row[columns.index("n")] == len(records) // 3
    columns, found = run_report(db, "label_drift")
    assert {r[columns.index("clips")] for r in found} == {len(records)}
    means = {r[columns.index("dimension")]: r[columns.index("mean")] for r in found}
    assert means["arousal"] == pytest.approx(np.mean([teacher[i][0] for i in ids]))
    columns, found = run_report(db, "student_vs_teacher")
    pairs = [dict(zip(columns, r, strict=True)) for r in found]
    for model, clips in predicted:
        assert sum(p["model"] == model for p in pairs) == 3 * clips, model
    for pair in pairs:
        index = ("arousal", "dominance", "valence").index(pair["dimension"])
        assert pair["teacher"] == pytest.approx(teacher[pair["audio_id"]][index])


def test_ccc_macro_equals_audmetric(built) -> None:
    _, _, db, _ = built
    import audmetric

    rng = np.random.default_rng(7)
    groups = {g: (rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)) for g in range(5)}
    groups[5] = (np.linspace(0, 1, 30), np.linspace(0, 1, 30) * 0.5 + 0.2)
    rows = [(g, float(x), float(y)) for g, (xs, ys) in groups.items()
            for x, y in zip(xs, ys, strict=True)]
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("CREATE TEMP TABLE pairs (g INTEGER, x DOUBLE, y DOUBLE)")
        con.executemany("INSERT INTO pairs VALUES (?, ?, ?)", rows)
        sql_ccc = dict(con.execute("SELECT g, ccc(x, y) FROM pairs GROUP BY g").fetchall())
        # documented edge cases: < 2 pairs and constant-equal inputs are NULL
        assert con.execute("SELECT ccc(x, y) FROM (VALUES (0.5, 0.5)) t(x, y)"
                           ).fetchall() == [(None,)]
        assert con.execute("SELECT ccc(x, y) FROM (VALUES (0.5, 0.5), (0.5, 0.5)) t(x, y)"
                           ).fetchall() == [(None,)]
    for g, (xs, ys) in groups.items():
        assert sql_ccc[g] == pytest.approx(audmetric.concordance_cc(ys, xs), abs=1e-6)
        assert sql_ccc[g] == pytest.approx(ccc(xs, ys), abs=1e-6)


def test_plain_duckdb_process_reads_tables_and_views(built) -> None:
    _, records, db, _ = built
    script = (
        "import json, sys, duckdb\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {'metrics': con.execute('SELECT count(*) FROM metrics').fetchall()[0][0],\n"
        "       'audio': con.execute('SELECT count(*) FROM audio').fetchall()[0][0],\n"
        "       'teacher': con.execute(\"SELECT count(*) FROM latest_metrics "
        "WHERE reference = 'teacher'\").fetchall()[0][0],\n"
        "       'modules': sorted(m for m in sys.modules if m.startswith('ser_pipeline'))}\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True,
                            text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out == {"metrics": 48, "audio": len(records), "teacher": 24, "modules": []}


def test_s3_lake_through_registered_fsspec(s3_env: dict, tmp_path: Path) -> None:
    url = f"s3://{s3_env['bucket']}/lake"
    lake, records = evaluated_lake(url, n=6)
    summary = build_db(Lake.open(url), out=tmp_path / "s3.duckdb")
    assert summary["lake"] == url and [n.split("'")[1] for n in summary["notices"]] == ["drift"]
    assert summary["rows"]["metrics"] == lake.count("metrics") > 0
    assert summary["rows"]["audio"] == 6
    with connect(summary["db"]) as con:  # registers the lake's filesystem again
        assert con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == \
            lake.count("predictions")
    # without the filesystem, the materialised table still answers; the view cannot
    with duckdb.connect(summary["db"], read_only=True,
                        config={"autoinstall_known_extensions": "false",
                                "autoload_known_extensions": "false"}) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] > 0
        with pytest.raises(duckdb.Error):
            con.execute("SELECT count(*) FROM audio").fetchall()


def test_lake_paths_are_quoted_and_globs_refused(tmp_path: Path) -> None:
    odd = tmp_path / "it's a lake"
    lake, _ = make_audio_lake(str(odd), n=2, human_labels=False)
    summary = build_db(lake, out=tmp_path / "odd.duckdb")
    assert summary["rows"]["audio"] == 2
    globby, _ = make_audio_lake(str(tmp_path / "lake[1]"), n=1, human_labels=False)
    with pytest.raises(DatabaseError, match="file pattern"):
        lake_relation(globby, "audio")
    assert "WHERE false" in empty_relation("splits")


def test_cli_db_build(tmp_path: Path, lake_url: str) -> None:
    from ser_pipeline.cli import app

    evaluated_lake(lake_url, n=6)
    out = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(app, ["db", "build", "--out", str(out), "--lake", lake_url,
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"]["metrics"] == 48
    result = CliRunner().invoke(app, ["db", "build", "--out", str(tmp_path / "e.duckdb"),
                                      "--lake", str(tmp_path / "empty")])
    assert result.exit_code == 0 and "notice" in result.output


def test_parts_written_before_new_columns_read_as_null(tmp_path: Path, lake_url: str) -> None:
    """audio.gender and the metrics interval columns came later: a lake holding only older
    parts still builds, its views name the new columns (NULL), and old metrics rows count
    as global CCCs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ser_pipeline.lake import utcnow
    from ser_pipeline.schemas import AUDIO, METRICS

    lake = Lake.open(lake_url)
    root = Path(lake_url)
    old_audio = pa.schema([f for f in AUDIO if f.name != "gender"])
    (root / "audio").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"audio_id": "a" * 64, "corpus": "old",
                                          "speaker": "s1", "ingested_at": utcnow()}],
                                        schema=old_audio), root / "audio" / "part-old.parquet")
    old_metrics = pa.schema([f for f in METRICS if f.name not in (
        "aggregation", "ccc_lo", "ccc_hi", "pearson_lo", "pearson_hi", "mae_lo", "mae_hi",
        "ci_level", "ci_method", "ci_unit", "ci_units", "ci_resamples")])
    (root / "metrics").mkdir()
    row = {"eval_id": "e1", "model": "m", "model_key": "k", "corpus": "old", "split": "test",
           "reference": "teacher", "teacher_id": "t", "dimension": "arousal", "ccc": 0.5,
           "n": 10, "evaluated_at": utcnow()}
    pq.write_table(pa.Table.from_pylist([row], schema=old_metrics),
                   root / "metrics" / "part-old.parquet")
    db = build_db(lake, out=tmp_path / "old.duckdb")["db"]
    with connect(db) as con:
        assert con.execute("SELECT audio_id, gender FROM audio").fetchall() == [("a" * 64, None)]
        assert con.execute("SELECT aggregation, ccc, ccc_lo, ci_unit FROM latest_metrics"
                           ).fetchall() == [("global", 0.5, None, None)]
    from ser_pipeline.reports import run_report

    columns, rows = run_report(db, "leaderboard")
    board = dict(zip(columns, rows[0], strict=True))
    assert board["ccc_arousal"] == 0.5 and board["ccc_arousal_lo"] is None
    # a new part next to the old one: both read, the old one's gender NULL
    lake.write_part("audio", [{"audio_id": "b" * 64, "corpus": "new", "speaker": "s2",
                               "gender": "female", "ingested_at": utcnow()}], key="new")
    assert set(lake.read("audio", columns=["gender"]).column("gender").to_pylist()) == {
        "female", None}
    with connect(db) as con:
        assert sorted(con.execute("SELECT corpus, gender FROM audio").fetchall()) == [
            ("new", "female"), ("old", None)]
        plan = con.execute("EXPLAIN SELECT * FROM audio").fetchall()[0][1]
    assert "bytes" not in plan  # the union keeps the projection: audio bytes are never read


def test_lake_views_give_library_code_the_same_views(built) -> None:
    from ser_pipeline.db import lake_views, view_statements

    lake, records, db, _ = built
    _relabel(lake, records)
    assert {"latest_teacher_labels", "latest_human_labels", "audio"} <= set(view_statements())
    with lake_views(lake, ["latest_teacher_labels", "latest_human_labels"]) as mem, \
            connect(db) as built_db:
        for view in ("latest_teacher_labels", "latest_human_labels"):
            query = f"SELECT * EXCLUDE (ingested_at) FROM {view} ORDER BY ALL" \
                if view == "latest_human_labels" else f"SELECT * FROM {view} ORDER BY ALL"
            assert mem.execute(query).fetchall() == built_db.execute(query).fetchall()
    with pytest.raises(DatabaseError, match="defines no view 'nope'"):
        lake_views(lake, ["nope"])
