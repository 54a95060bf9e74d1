"""Quarantine rows: one builder for every stage; old rows (teacher only in the message)
still read correctly, in the library and in the analyst database."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pyarrow as pa

from ser_pipeline.db import build_db, connect
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.quarantine import QuarantineRow, legacy_teacher_prefix, quarantined_ids
from ser_pipeline.schemas import QUARANTINE

#: The quarantine schema before the teacher_id column (as old part files carry it).
OLD_SCHEMA = pa.schema([f for f in QUARANTINE if f.name != "teacher_id"])


def write_old_part(lake: Lake, rows: list[tuple[str, str, str]]) -> None:
    """``(audio_id, stage, message)`` rows in a part file of the old schema."""
    table = pa.Table.from_pylist([
        {"corpus": None, "source_path": f"{a}.flac", "audio_id": a, "stage": stage,
         "reason": "decode_error", "message": message, "quarantined_at": utcnow()}
        for a, stage, message in rows], schema=OLD_SCHEMA)
    assert "teacher_id" not in table.column_names
    lake.storage.write_parquet("quarantine/part-old.parquet", table)


def write_new_part(lake: Lake, rows: list[QuarantineRow]) -> None:
    lake.write_part("quarantine", [row.to_dict() for row in rows],
                    key=content_key("new", [row.audio_id for row in rows]))


def mixed_lake(url: str) -> Lake:
    lake = Lake.open(url)
    write_old_part(lake, [
        ("a", "label", legacy_teacher_prefix("t1") + "not FLAC"),
        ("b", "label", legacy_teacher_prefix("t2") + "not FLAC"),
        ("c", "label", legacy_teacher_prefix("t1x") + "not FLAC"),  # another teacher
        ("d", "ingest", legacy_teacher_prefix("t1") + "a file named so"),  # not labeling
    ])
    write_new_part(lake, [
        QuarantineRow(stage="label", reason="too_short", message="100 samples",
                      audio_id="e", teacher_id="t1"),
        QuarantineRow(stage="label", reason="too_short", message="100 samples",
                      audio_id="f", teacher_id="t2"),
        QuarantineRow(stage="evaluate", reason="model_error", message="x", audio_id="g",
                      teacher_id="t1"),
        QuarantineRow(stage="label", reason="model_error",  # a new row never reads text
                      message=legacy_teacher_prefix("t1") + "x", audio_id="h",
                      teacher_id="t3"),
    ])
    return lake


def test_the_builder_is_the_schema() -> None:
    assert [f.name for f in fields(QuarantineRow)] == QUARANTINE.names
    row = QuarantineRow(stage="ingest", reason="truncated", message="cut", corpus="c",
                        source_path="x.wav")
    assert pa.Table.from_pylist([row.to_dict()], schema=QUARANTINE).to_pylist()[0] == \
        row.to_dict()


def test_old_and_new_rows_name_their_teacher(lake_url: str) -> None:
    lake = mixed_lake(lake_url)
    assert quarantined_ids(lake, stage="label", teacher_id="t1") == {"a", "e"}
    assert quarantined_ids(lake, stage="label", teacher_id="t2") == {"b", "f"}
    assert quarantined_ids(lake, stage="label", teacher_id="t3") == {"h"}
    assert quarantined_ids(lake, stage="evaluate", teacher_id="t1") == {"g"}
    rows = {r["audio_id"]: r for r in lake.read("quarantine").to_pylist()}
    assert rows["a"]["teacher_id"] is None and rows["e"]["teacher_id"] == "t1"


def test_the_analyst_view_reads_old_and_new_parts(lake_url: str, tmp_path: Path) -> None:
    lake = mixed_lake(lake_url)
    summary = build_db(lake, out=tmp_path / "ser.duckdb")
    assert summary["rows"]["quarantine"] == 8
    with connect(summary["db"]) as con:
        rows = dict(con.execute("SELECT audio_id, teacher_id FROM quarantine").fetchall())
        by_stage = con.execute("SELECT stage, count(*) FROM quarantine GROUP BY stage "
                               "ORDER BY stage").fetchall()
    assert rows == {"a": None, "b": None, "c": None, "d": None, "e": "t1", "f": "t2",
                    "g": "t1", "h": "t3"}
    assert by_stage == [("evaluate", 1), ("ingest", 1), ("label", 6)]
