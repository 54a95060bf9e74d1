"""Ingest end to end: real files in many formats, every quarantine reason, incremental
re-runs, S3 on a moto server, the datasets Audio round trip, the CLI and the flow."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import soundfile as sf
from corpora import DATA, build_audformat, build_iemocap, build_msp_podcast, clip_bytes, write_clip
from typer.testing import CliRunner

from ser_pipeline.audio import decode_flac
from ser_pipeline.cli import app
from ser_pipeline.ingest import _size_grouped_shards, ingest, ingest_shard, plan_ingest
from ser_pipeline.lake import Lake
from ser_pipeline.recipes import Entry, RecipeError

FIXTURES = sorted(p for p in DATA.iterdir() if p.suffix in {".wav", ".flac", ".ogg", ".mp3"})


def rows(lake: Lake, table: str, columns: list[str] | None = None) -> list[dict]:
    return lake.read(table, columns=columns).to_pylist()


def quarantine_by_path(lake: Lake) -> dict[str, str]:
    return {r["source_path"]: r["reason"] for r in rows(lake, "quarantine")}


def test_mixed_formats_become_16k_mono_flac(tmp_path, lake_url):
    corpus = tmp_path / "corpus"
    for index, fixture in enumerate(FIXTURES):
        target = corpus / ("nested" if index % 2 else "") / fixture.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture, target)
    lake = Lake.open(lake_url)
    summary = ingest(lake, str(corpus), corpus="fixtures", shard_size=4)
    assert summary["ingested"] == len(FIXTURES) == summary["files_seen"]
    assert summary["quarantined_total"] == 0 and summary["shards"] == 2
    audio = {r["source_path"]: r for r in rows(lake, "audio")}
    assert len(audio) == len(FIXTURES)
    total = 0.0
    for index, fixture in enumerate(FIXTURES):
        row = audio[f"nested/{fixture.name}" if index % 2 else fixture.name]
        info = sf.info(fixture)
        assert row["audio_id"] == hashlib.sha256(fixture.read_bytes()).hexdigest()
        assert (row["orig_sample_rate"], row["orig_channels"]) == (info.samplerate, info.channels)
        assert row["orig_format"] == f"{info.format}/{info.subtype}"
        stored = sf.info(io.BytesIO(row["audio"]["bytes"]))
        assert (stored.format, stored.samplerate, stored.channels) == ("FLAC", 16_000, 1)
        signal = decode_flac(row["audio"]["bytes"])
        assert row["duration_s"] == pytest.approx(signal.size / 16_000)
        assert row["duration_s"] == pytest.approx(info.duration, abs=0.1)
        assert row["corpus"] == "fixtures" and row["is_silent"] is False
        assert np.abs(signal).max() > 0.01
        total += row["duration_s"]
    assert summary["audio_seconds"] == pytest.approx(total, abs=1e-3)
    assert lake.count("human_labels") == 0


def long_path_dir(root: Path) -> str:
    """Create nested directories whose full path exceeds PATH_MAX (4096); returns the
    root-relative path of the first directory the OS cannot address by name."""
    fd = os.open(root, os.O_RDONLY)
    parts = []
    try:
        for _ in range(22):
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            next_fd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
            parts.append(name)
        with open(os.open("deep.wav", os.O_CREAT | os.O_WRONLY, dir_fd=fd), "wb") as handle:
            handle.write(clip_bytes(40))
    finally:
        os.close(fd)
    return parts


def build_bad_corpus(root: Path) -> None:
    write_clip(root / "good.wav", 0)
    write_clip(root / "x.wav" / "inside.flac", 1)  # a directory named x.wav
    (root / "empty.wav").write_bytes(b"")
    flac = clip_bytes(2, fmt="FLAC")
    (root / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (root / "notes.mp3").write_bytes(b"this is a text file with an audio extension\n" * 10)
    wav = clip_bytes(3)
    (root / "wma.wav").write_bytes(wav[:20] + struct.pack("<H", 0x0161) + wav[22:])
    sf.write(root / "zero.wav", np.zeros(0, np.float32), 16_000)
    nan = np.full(8000, 0.1, np.float32)
    nan[10] = np.nan
    sf.write(root / "nan.wav", nan, 16_000, subtype="FLOAT")
    sf.write(root / "long.flac", np.tile(sf.read(DATA / "hello_22k_pcm16.wav")[0], 3), 22_050)
    sf.write(root / "silent.wav", np.zeros(16_000, np.float32), 16_000)
    os.symlink("self.ogg", root / "self.ogg")
    os.symlink("nowhere.wav", root / "dangling.wav")
    os.close(os.open(os.path.join(os.fsencode(root), b"bad\xff.wav"), os.O_CREAT | os.O_WRONLY))
    shutil.copy(root / "good.wav", root / "good2.wav")  # sorts after: good.wav wins


def test_every_quarantine_reason_and_silence(tmp_path, lake_url):
    corpus = tmp_path / "bad"
    build_bad_corpus(corpus)
    deep = "/".join(long_path_dir(corpus))
    lake = Lake.open(lake_url)
    summary = ingest(lake, str(corpus), corpus="bad", max_duration_s=2.0, shard_size=3)
    expected = {
        "x.wav": "not_a_file",
        "empty.wav": "empty_file",
        "truncated.flac": "truncated",
        "notes.mp3": "not_audio",
        "wma.wav": "unsupported_codec",
        "zero.wav": "zero_length",
        "nan.wav": "non_finite_samples",
        "long.flac": "too_long",
        "self.ogg": "symlink_loop",
        "dangling.wav": "broken_symlink",
        "bad\\xff.wav": "non_utf8_name",
        "good2.wav": "duplicate_content",
    }
    found = quarantine_by_path(lake)
    long_entries = {p: r for p, r in found.items() if p.startswith(deep[:1000])}
    assert list(long_entries.values()) == ["name_too_long"]
    assert {p: r for p, r in found.items() if p not in long_entries} == expected
    assert all(r["message"] and r["stage"] == "ingest" for r in rows(lake, "quarantine"))
    by_reason: dict[str, int] = {}
    for reason in [*expected.values(), "name_too_long"]:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    assert summary["quarantined"] == dict(sorted(by_reason.items()))
    ingested = {r["source_path"]: r for r in rows(lake, "audio", ["source_path", "is_silent"])}
    assert set(ingested) == {"good.wav", "x.wav/inside.flac", "silent.wav"}
    assert ingested["silent.wav"]["is_silent"] and not ingested["good.wav"]["is_silent"]
    assert summary["silent_flagged"] == 1 and summary["ingested"] == 3

    again = ingest(lake, str(corpus), corpus="bad", max_duration_s=2.0, shard_size=5)
    assert again["ingested"] == 0 and again["skipped_existing"] == 3
    assert again["quarantine_rows_written"] == 0
    assert lake.count("quarantine") == len(found) and lake.count("audio") == 3


def _ingest_as_nobody(corpus: str, lake_url: str, pipe_w: int) -> None:  # pragma: no cover
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        summary = ingest(Lake.open(lake_url), corpus, corpus="perm", max_workers=1)
        os.write(pipe_w, json.dumps(summary).encode())
    except BaseException as error:
        os.write(pipe_w, json.dumps({"child_error": repr(error)}).encode())
    finally:
        os._exit(0)


def test_unreadable_file_is_quarantined():
    """A file without read permission. The suite runs as root here, and root reads any
    file, so the ingest itself runs in a forked child that drops to uid/gid 65534 (nobody)
    before reading; as an ordinary user it runs directly."""
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="ser-perm-"))  # /tmp: reachable by nobody
    os.chmod(shared, 0o777)
    try:
        _check_unreadable(shared)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _check_unreadable(shared: Path) -> None:
    corpus = shared / "corpus"
    write_clip(corpus / "ok.wav", 0)
    write_clip(corpus / "locked.wav", 1)
    os.chmod(corpus, 0o755)
    os.chmod(corpus / "ok.wav", 0o644)
    os.chmod(corpus / "locked.wav", 0o000)
    lake_url = str(shared / "lake")
    if os.geteuid() == 0:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _ingest_as_nobody(str(corpus), lake_url, write_fd)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as handle:
            output = handle.read()
        os.waitpid(pid, 0)
        summary = json.loads(output)
        assert "child_error" not in summary, summary["child_error"]
    else:
        summary = ingest(Lake.open(lake_url), str(corpus), corpus="perm")
    assert summary["ingested"] == 1 and summary["quarantined"] == {"unreadable": 1}
    (row,) = rows(Lake.open(lake_url), "quarantine")
    assert row["source_path"] == "locked.wav" and "permission denied" in row["message"].lower()
    assert row["audio_id"] is None


def test_rerun_adds_nothing_and_new_files_are_ingested(tmp_path, lake_url):
    corpus = tmp_path / "c"
    for index in range(5):
        write_clip(corpus / f"clip{index}.wav", index)
    lake = Lake.open(lake_url)
    first = ingest(lake, str(corpus), corpus="inc", shard_size=2)
    assert (first["ingested"], first["shards"]) == (5, 3)
    parts = lake.parts("audio")
    second = ingest(lake, str(corpus), corpus="inc", shard_size=2)
    assert (second["ingested"], second["skipped_existing"], second["shards"]) == (0, 5, 0)
    assert lake.parts("audio") == parts and lake.count("audio") == 5
    write_clip(corpus / "late" / "new1.flac", 11)
    write_clip(corpus / "late" / "new2.ogg", 12)
    third = ingest(lake, str(corpus), corpus="inc", shard_size=2)
    assert (third["ingested"], third["skipped_existing"]) == (2, 5)
    assert lake.count("audio") == 7
    assert len(lake.ids("audio")) == 7
    # the same folder under another corpus name: every file is already stored once
    other = ingest(lake, str(corpus), corpus="inc-copy")
    assert other["ingested"] == 0 and other["quarantined"] == {"duplicate_content": 7}
    assert lake.count("audio") == 7


def test_retried_shard_writes_nothing_twice(tmp_path, lake_url):
    corpus = tmp_path / "c"
    write_clip(corpus / "a.wav", 0)
    write_clip(corpus / "b.wav", 1)
    (corpus / "broken.wav").write_bytes(b"RIFF")
    lake = Lake.open(lake_url)
    shards, plan = plan_ingest(lake, str(corpus), corpus="retry", shard_size=100)
    (shard,) = shards
    first = ingest_shard(shard, lake=lake)
    counts = {t: lake.count(t) for t in ("audio", "quarantine")}
    again = ingest_shard(shard, lake=lake_url)  # a Prefect retry after a lost result
    assert again["quarantine_rows_written"] == 0 and again["ingested"] == 0
    assert again["skipped_existing"] == first["ingested"]
    assert {t: lake.count(t) for t in ("audio", "quarantine")} == counts
    assert (first["ingested"], first["quarantined"]) == (2, {"not_audio": 1})


def test_size_grouping_keeps_identical_sizes_together():
    entries = [Entry(f"f{i}", size=size) for i, size in enumerate([5, 7, 5, 9, 7, 5, 1])]
    shards = _size_grouped_shards(entries, 3)
    assert all(len(s) <= 3 for s in shards)
    for size in (5, 7):
        assert sum(any(e.size == size for e in s) for s in shards) == 1
    assert sorted(e.source_path for s in shards for e in s) == sorted(e.source_path
                                                                       for e in entries)
    big = _size_grouped_shards([Entry(f"g{i}", size=4) for i in range(7)], 3)
    assert [len(s) for s in big] == [3, 3, 1]
    heavy = _size_grouped_shards([Entry(f"h{i}", size=100 + i) for i in range(6)], 64,
                                 max_bytes=250)
    assert [len(s) for s in heavy] == [2, 2, 2]  # memory bound, not file count


@pytest.mark.parametrize("recipe,build,options", [
    ("msp-podcast", build_msp_podcast, {}),
    ("iemocap", build_iemocap, {}),
    ("audformat", build_audformat, {}),
])
def test_labelled_recipes_write_human_labels(tmp_path, lake_url, recipe, build, options):
    root = build(tmp_path / recipe)
    lake = Lake.open(lake_url)
    summary = ingest(lake, str(root), corpus="lab", recipe=recipe, recipe_options=options)
    labels = {r["audio_id"]: r for r in rows(lake, "human_labels")}
    audio = {r["audio_id"]: r for r in rows(lake, "audio", ["audio_id", "source_path", "speaker",
                                                              "split", "gender"])}
    assert summary["labelled"] == len(labels) > 0 and summary["quarantined_total"] == 0
    assert set(labels) <= set(audio)
    for row in labels.values():
        assert all(0.0 <= row[d] <= 1.0 for d in ("arousal", "dominance", "valence"))
    if recipe == "iemocap":
        (angry,) = [labels[i] for i, a in audio.items() if a["source_path"].endswith("F002.wav")]
        assert (angry["arousal"], angry["dominance"], angry["valence"]) == (1.0, 0.875, 0.0)
        assert angry["source_scale"] == "1-5"
    genders = {a["source_path"].rsplit("/", 1)[-1]: a["gender"] for a in audio.values()}
    expected = {"iemocap": {"Ses01F_impro01_F000.wav": "female",
                            "Ses01F_impro01_M001.wav": "male"},
                "msp-podcast": {"MSP-PODCAST_0001_0008.wav": "female",
                                "MSP-PODCAST_0003_0001.wav": "male",
                                "MSP-PODCAST_0100_0000.wav": None},
                "audformat": {"a.wav": "female", "b.wav": "male", "d.wav": None}}[recipe]
    assert {name: genders[name] for name in expected} == expected
    if recipe == "msp-podcast":
        splits = sorted(a["split"] or "-" for a in audio.values())
        assert splits == ["-", "dev", "test1", "test2", "train"]
    again = ingest(lake, str(root), corpus="lab", recipe=recipe, recipe_options=options)
    assert again["ingested"] == 0 and lake.count("human_labels") == len(labels)


def test_recipe_option_that_does_not_apply_is_an_error(tmp_path, lake_url):
    with pytest.raises(RecipeError, match="label_min do not apply to recipe 'iemocap'"):
        ingest(Lake.open(lake_url), str(build_iemocap(tmp_path)), corpus="x", recipe="iemocap",
               recipe_options={"label_min": 1})


def test_s3_prefix_into_s3_lake(tmp_path, s3_env):
    import s3fs

    from ser_pipeline.config import get_settings

    local = build_msp_podcast(tmp_path / "msp")
    (local / "Audios" / "broken.wav").write_bytes(b"RIFF....WAVE")
    fs = s3fs.S3FileSystem(**get_settings().s3_options())
    bucket = s3_env["bucket"]
    fs.put(str(local) + "/", f"{bucket}/raw/msp/", recursive=True)
    lake = Lake.open(f"s3://{bucket}/lake")
    summary = ingest(lake, f"s3://{bucket}/raw/msp", corpus="msp", recipe="msp-podcast")
    assert summary["ingested"] == 5 and summary["labelled"] == 4
    assert summary["quarantined"] == {"truncated": 1}
    assert lake.count("audio") == 5 and lake.count("human_labels") == 4
    assert all(p.startswith("audio/part-") for p in lake.parts("audio"))
    assert fs.ls(f"{bucket}/lake/audio")  # really on the S3 server
    row = lake.read("audio", filter=ds.field("source_path") == "Audios/MSP-PODCAST_0001_0008.wav"
                    ).to_pylist()[0]
    source_bytes = (local / "Audios" / "MSP-PODCAST_0001_0008.wav").read_bytes()
    assert row["audio_id"] == hashlib.sha256(source_bytes).hexdigest()
    assert decode_flac(row["audio"]["bytes"]).size > 8000
    again = ingest(lake, f"s3://{bucket}/raw/msp", corpus="msp", recipe="msp-podcast")
    assert again["ingested"] == 0 and again["skipped_existing"] == 5
    assert again["quarantine_rows_written"] == 0
    assert lake.count("audio") == 5 and lake.count("quarantine") == 1


def test_datasets_reads_the_audio_column_as_audio(tmp_path, lake_url):
    """`datasets` restores the Audio feature from the Parquet metadata. Decoding through
    `datasets` 5 needs torchcodec (and FFmpeg), which is not installed here, so the test
    reads the FLAC bytes through the feature with decode=False and decodes them with
    soundfile; the feature type itself is what datasets decodes with when torchcodec is
    present."""
    import datasets

    corpus = tmp_path / "c"
    write_clip(corpus / "a.wav", 0)
    write_clip(corpus / "b.ogg", 1)
    lake = Lake.open(lake_url)
    ingest(lake, str(corpus), corpus="hf")
    (part,) = lake.parts("audio")
    dataset = datasets.Dataset.from_parquet(lake.storage.path(part),
                                            cache_dir=str(tmp_path / "hf-cache"))
    feature = dataset.features["audio"]
    assert isinstance(feature, datasets.Audio) and feature.sampling_rate == 16_000
    assert dataset.features["gender"] == datasets.Value("string")  # null: no metadata here
    assert set(dataset["gender"]) == {None}
    raw = dataset.cast_column("audio", datasets.Audio(sampling_rate=16_000, decode=False))
    by_path = {r["source_path"]: r for r in raw}
    signal, rate = sf.read(io.BytesIO(by_path["a.wav"]["audio"]["bytes"]))
    assert rate == 16_000 and signal.ndim == 1
    assert signal.size / 16_000 == pytest.approx(by_path["a.wav"]["duration_s"])


def test_cli_table_json_and_errors(tmp_path, lake_url):
    corpus = tmp_path / "c"
    write_clip(corpus / "a.wav", 0)
    (corpus / "b.wav").write_bytes(b"")
    (corpus / "labels.csv").write_text("path,arousal,dominance,valence\na.wav,2,4,6\n")
    runner = CliRunner()
    base = ["ingest", str(corpus), "--corpus", "cli", "--lake", lake_url, "--engine", "local"]
    result = runner.invoke(app, [*base, "--recipe", "csv", "--label-min", "0", "--label-max",
                                 "8", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ingested"] == 1 and summary["labelled"] == 1
    assert summary["quarantined"] == {"empty_file": 1}
    (label,) = rows(Lake.open(lake_url), "human_labels")
    assert (label["arousal"], label["dominance"], label["valence"]) == (0.25, 0.5, 0.75)
    table = runner.invoke(app, [*base, "--recipe", "csv", "--label-max", "8"])
    assert table.exit_code == 0, table.output
    assert "skipped_existing" in table.stdout and "quarantined.empty_file" in table.stdout
    for args, message in ((["--recipe", "timit"], "unknown --recipe 'timit'"),
                          (["--recipe", "iemocap", "--label-min", "1"], "do not apply")):
        bad = runner.invoke(app, [*base, *args])
        assert bad.exit_code == 2 and message in bad.output
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--corpus", "cli",
                                  "--lake", lake_url, "--engine", "local"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_name = runner.invoke(app, [*base[:2], "--corpus", "../etc", *base[4:]])
    assert bad_name.exit_code == 2 and "invalid corpus name" in bad_name.output


@pytest.mark.slow
def test_flow_maps_one_task_per_shard(tmp_path, lake_url, prefect_harness):
    from prefect.artifacts import Artifact

    from flows.ingest import ingest_flow

    corpus = tmp_path / "c"
    for index in range(5):
        write_clip(corpus / f"clip{index}.flac", index)
    (corpus / "empty.wav").write_bytes(b"")
    summary = ingest_flow(source=str(corpus), corpus="flowtest", lake=lake_url, shard_size=2)
    assert summary["ingested"] == 5 and summary["shards"] == 3
    assert summary["quarantined"] == {"empty_file": 1}
    assert Lake.open(lake_url).count("audio") == 5
    artifact = Artifact.get("ingest-flowtest")
    assert artifact is not None and "ingested" in str(artifact.data)
    again = ingest_flow(source=str(corpus), corpus="flowtest", lake=lake_url, shard_size=2)
    assert again["ingested"] == 0 and again["skipped_existing"] == 5
