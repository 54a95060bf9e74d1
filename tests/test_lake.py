from __future__ import annotations

from ser_pipeline.lake import Lake, content_key, utcnow


def _label_rows(ids):
    return [
        {"audio_id": i, "teacher_id": "t", "teacher_sha256": "s", "arousal": 0.1,
         "dominance": 0.2, "valence": 0.3, "n_windows": 1, "labeled_at": utcnow(),
         "run_id": "r"}
        for i in ids
    ]


def test_part_writes_are_idempotent(lake_url):
    lake = Lake.open(lake_url)
    key = content_key("t", ["a", "b"])
    assert lake.write_part("teacher_labels", _label_rows(["a", "b"]), key=key)
    assert not lake.write_part("teacher_labels", _label_rows(["a", "b"]), key=key)
    assert lake.count("teacher_labels") == 2
    assert lake.ids("teacher_labels") == {"a", "b"}


def test_missing_table_reads_empty_with_schema(lake_url):
    lake = Lake.open(lake_url)
    table = lake.read("audio", columns=["audio_id", "duration_s"])
    assert table.num_rows == 0 and table.column_names == ["audio_id", "duration_s"]


def test_s3_lake(s3_env):
    lake = Lake.open(f"s3://{s3_env['bucket']}/lake")
    lake.write_part("teacher_labels", _label_rows(["x"]), key="k1")
    assert lake.ids("teacher_labels") == {"x"}
    assert lake.parts("teacher_labels") == ["teacher_labels/part-k1.parquet"]
