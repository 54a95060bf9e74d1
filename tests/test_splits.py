"""Splits: deterministic, by speaker, stored in the lake, incremental, ingest splits kept."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from lakes import make_audio_lake

from ser_pipeline.audio import encode_flac
from ser_pipeline.lake import content_key, utcnow
from ser_pipeline.splits import DEFAULT_SPLIT_NAME, ensure_splits, read_splits, split_names


def _speakers(lake):
    table = lake.read("audio", columns=["audio_id", "speaker"]).to_pylist()
    return {row["audio_id"]: row["speaker"] for row in table}


def test_split_by_speaker_is_stored_and_idempotent(lake_url):
    lake, records = make_audio_lake(lake_url, n=30, speakers=6)
    summary = ensure_splits(lake)
    assert summary["new"] == 30 and summary["split_name"] == DEFAULT_SPLIT_NAME
    splits = read_splits(lake)
    assert set(splits) == {r["audio_id"] for r in records}
    assert set(splits.values()) == {"train", "dev"}
    by_speaker: dict[str, set[str]] = {}
    for audio_id, speaker in _speakers(lake).items():
        by_speaker.setdefault(speaker, set()).add(splits[audio_id])
    assert all(len(sides) == 1 for sides in by_speaker.values())  # a speaker never straddles
    dev_speakers = [s for s, sides in by_speaker.items() if sides == {"dev"}]
    assert len(dev_speakers) == round(0.2 * 6)
    parts = lake.parts("splits")
    again = ensure_splits(lake)
    assert again["new"] == 0 and lake.parts("splits") == parts
    assert split_names(lake) == [DEFAULT_SPLIT_NAME]


def test_split_is_the_same_on_a_rebuilt_lake(tmp_path):
    first, _ = make_audio_lake(str(tmp_path / "a"), n=20, speakers=5)
    second, _ = make_audio_lake(str(tmp_path / "b"), n=20, speakers=5)
    ensure_splits(first)
    ensure_splits(second)
    assert read_splits(first) == read_splits(second)


def test_new_clips_never_move_old_ones(lake_url):
    lake, _ = make_audio_lake(lake_url, n=18, speakers=6, seed=0)
    ensure_splits(lake)
    before = read_splits(lake)
    _, more = make_audio_lake(lake_url, n=12, speakers=6, seed=1)  # same speaker names
    summary = ensure_splits(lake)
    after = read_splits(lake)
    assert summary["new"] == 12
    assert {k: after[k] for k in before} == before
    speaker_side = {}
    speakers = _speakers(lake)
    for audio_id in before:
        speaker_side[speakers[audio_id]] = before[audio_id]
    for record in more:  # a new clip of a known speaker follows that speaker
        assert after[record["audio_id"]] == speaker_side[speakers[record["audio_id"]]]


def test_without_speakers_split_by_clip_hash(lake_url):
    lake, records = make_audio_lake(lake_url, n=40, speakers=0)
    ensure_splits(lake, dev_fraction=0.25)
    splits = read_splits(lake, split_name="speaker-hash-dev25")
    assert sum(v == "dev" for v in splits.values()) == 10
    assert read_splits(lake) == {}  # another definition is another name


def test_ingest_split_column_is_kept(lake_url):
    lake, _ = make_audio_lake(lake_url, n=8)
    rows = []
    for index, split in enumerate(["Train", "Development", "Test1", "Test2"]):
        flac = encode_flac(np.full(1600, 0.01 * (index + 1), dtype=np.float32))
        rows.append({"audio_id": hashlib.sha256(flac).hexdigest(),
                     "audio": {"bytes": flac, "path": f"m{index}.flac"}, "corpus": "msp",
                     "source_path": f"m{index}.flac", "duration_s": 0.1,
                     "orig_sample_rate": 16000, "orig_channels": 1, "orig_format": "FLAC",
                     "speaker": "s1", "split": split, "is_silent": False,
                     "ingested_at": utcnow()})
    lake.write_part("audio", rows, key=content_key("msp-test"))
    summary = ensure_splits(lake, corpora=["msp"])
    assert summary["corpora"] == {"msp": {"dev": 1, "test1": 1, "test2": 1, "train": 1}}
    splits = read_splits(lake, corpora=["msp"])
    assert sorted(splits.values()) == ["dev", "test1", "test2", "train"]
    assert len(read_splits(lake)) == 4  # the toy corpus was not assigned yet


def test_bad_input(lake_url):
    lake, _ = make_audio_lake(lake_url, n=4)
    with pytest.raises(ValueError, match="dev_fraction"):
        ensure_splits(lake, dev_fraction=1.5)
    with pytest.raises(ValueError, match="corpus nope has no audio.*toy"):
        ensure_splits(lake, corpora=["nope"])
