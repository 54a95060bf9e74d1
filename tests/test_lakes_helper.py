from lakes import add_teacher_labels, make_audio_lake

from ser_pipeline.audio import decode_flac


def test_toy_lake_roundtrips_audio_and_labels(lake_url):
    lake, records = make_audio_lake(lake_url, n=5)
    add_teacher_labels(lake, records)
    rows = lake.audio_for([records[0]["audio_id"]], columns=["audio_id", "audio"])
    signal = decode_flac(rows.column("audio")[0].as_py()["bytes"])
    assert abs(signal.size - records[0]["signal"].size) == 0
    assert lake.ids("teacher_labels") == {r["audio_id"] for r in records}
    assert lake.count("human_labels") == 5
