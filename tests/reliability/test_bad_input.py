"""Bad input sweep: a generated zoo of broken and odd audio files, and bad label sheets.

Every file ends up either ingested or quarantined with its specific reason, the run never
crashes, and a re-run adds nothing. Label-sheet problems give the error or the quarantine
row that docs/stages/ingest.md documents for the csv recipe.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from corpora import DATA
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.ingest import ingest
from ser_pipeline.lake import Lake
from ser_pipeline.recipes import RecipeError

from .report import record

SUITE = "bad input"
RATE = 16_000
LONG_NAME = "l" * 250 + ".wav"  # 254 bytes: the longest name ext4 allows, with extension


def _wav(signal: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _tone(seconds: float, rate: int = RATE, channels: int = 1, f0: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def _silent_u8_wav(path: Path, *, seconds: int, rate: int = 8_000) -> None:
    """A real 8-bit WAV of silence (value 128), streamed to disk (20 min = 9.6 MB)."""
    frames = seconds * rate
    header = b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", frames)
    block = b"\x80" * rate
    with open(path, "wb") as handle:
        handle.write(header)
        for _ in range(seconds):
            handle.write(block)


def build_zoo(root: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """Write the zoo; returns ``(expected quarantine reason by path, expected audio rows by
    path with the fields to check)``."""
    root.mkdir(parents=True)
    quarantined: dict[str, str] = {}
    ingested: dict[str, dict] = {}

    def put(name: str, data: bytes) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    # odd but valid: ingested, with the original properties recorded
    flac = io.BytesIO()
    sf.write(flac, _tone(0.5, f0=330), RATE, format="FLAC")
    put("flac_named.wav", flac.getvalue())  # wrong extension: the content decides
    ingested["flac_named.wav"] = {"orig_format": "FLAC/PCM_16", "orig_sample_rate": RATE}
    put("one_sample.wav", _wav(np.array([0.25], dtype=np.float32)))
    ingested["one_sample.wav"] = {"orig_sample_rate": RATE, "duration_s": 1 / RATE}
    put("rate_8k.wav", _wav(_tone(0.6, 8_000, f0=200), 8_000))
    ingested["rate_8k.wav"] = {"orig_sample_rate": 8_000, "duration_s": 0.6}
    put("rate_96k.wav", _wav(_tone(0.4, 96_000, f0=500), 96_000))
    ingested["rate_96k.wav"] = {"orig_sample_rate": 96_000, "duration_s": 0.4}
    put("six_channels.wav", _wav(_tone(0.3, channels=6, f0=440)))
    ingested["six_channels.wav"] = {"orig_channels": 6, "duration_s": 0.3}
    put("pcm24.wav", _wav(_tone(0.3, f0=270), subtype="PCM_24"))
    ingested["pcm24.wav"] = {"orig_format": "WAV/PCM_24"}
    put("float32.wav", _wav(_tone(0.3, f0=290), subtype="FLOAT"))
    ingested["float32.wav"] = {"orig_format": "WAV/FLOAT"}
    put("UPPER.WAV", _wav(_tone(0.3, f0=310)))
    ingested["UPPER.WAV"] = {"orig_channels": 1}
    _silent_u8_wav(root / "silence_20min.wav", seconds=20 * 60)
    ingested["silence_20min.wav"] = {"is_silent": True, "duration_s": 1200.0,
                                     "orig_format": "WAV/PCM_U8"}
    put(LONG_NAME, _wav(_tone(0.3, f0=350)))
    ingested[LONG_NAME] = {"orig_channels": 1}
    for fixture in ("later_24k.mp3", "thanks_16k.ogg"):
        shutil.copy(DATA / fixture, root / fixture)
        ingested[fixture] = {}
    put("x.wav/inside.wav", _wav(_tone(0.3, f0=370)))  # a directory named x.wav
    ingested["x.wav/inside.wav"] = {}
    quarantined["x.wav"] = "not_a_file"

    # broken: quarantined with a specific reason
    put("empty.wav", b"")
    quarantined["empty.wav"] = "empty_file"
    put("text.wav", b"this is a text file, not audio\n" * 20)
    quarantined["text.wav"] = "not_audio"
    put("truncated_header.wav", _wav(_tone(0.3))[:30])
    quarantined["truncated_header.wav"] = "truncated"
    good = _wav(_tone(1.0, f0=410))
    put("truncated_data.wav", good[: len(good) // 2])
    quarantined["truncated_data.wav"] = "truncated"
    nan = _tone(0.3, f0=430)
    nan[100:110] = np.nan
    put("nan.wav", _wav(nan, subtype="FLOAT"))
    quarantined["nan.wav"] = "non_finite_samples"
    put("no_frames.wav", _wav(np.zeros(0, dtype=np.float32)))
    quarantined["no_frames.wav"] = "zero_length"
    ogg = (DATA / "thanks_16k.ogg").read_bytes()
    put("cut.ogg", ogg[: len(ogg) * 2 // 3])
    quarantined["cut.ogg"] = "truncated"
    # Same bytes twice: the first path in shard order (size, then path) is stored.
    put("copy_of_8k.wav", (root / "rate_8k.wav").read_bytes())
    ingested["copy_of_8k.wav"] = ingested.pop("rate_8k.wav")
    quarantined["rate_8k.wav"] = "duplicate_content"
    os.symlink("loop.wav", root / "loop.wav")
    quarantined["loop.wav"] = "symlink_loop"
    os.symlink(".", root / "up.wav")  # a link to its own directory
    quarantined["up.wav"] = "symlink_loop"
    os.symlink("nowhere.wav", root / "dangling.wav")
    quarantined["dangling.wav"] = "broken_symlink"
    bad_name = os.fsencode(root) + b"/bad\xff\xfe.wav"
    with open(bad_name, "wb") as handle:
        handle.write(_wav(_tone(0.3, f0=450)))
    quarantined["bad\\xff\\xfe.wav"] = "non_utf8_name"
    return quarantined, ingested


@pytest.mark.slow
def test_audio_zoo_every_file_ingested_or_quarantined(tmp_path):
    quarantined, ingested = build_zoo(tmp_path / "zoo")
    lake = Lake.open(str(tmp_path / "lake"))
    summary = ingest(lake, str(tmp_path / "zoo"), corpus="zoo", shard_size=4)
    found = {r["source_path"]: r for r in lake.read("quarantine").to_pylist()}
    reasons = {path: row["reason"] for path, row in found.items()}
    assert reasons == quarantined
    assert all(row["message"] and row["stage"] == "ingest" for row in found.values())
    audio = {r["source_path"]: r for r in lake.read(
        "audio", columns=["source_path", "orig_format", "orig_sample_rate", "orig_channels",
                          "duration_s", "is_silent"]).to_pylist()}
    assert set(audio) == set(ingested)
    for path, fields in ingested.items():
        for key, value in fields.items():
            got = audio[path][key]
            assert (got == pytest.approx(value, abs=1e-3) if isinstance(value, float)
                    else got == value), (path, key, got, value)
    assert not audio["copy_of_8k.wav"]["is_silent"]
    assert summary["ingested"] == len(ingested)
    assert summary["quarantined_total"] == len(quarantined)
    again = ingest(lake, str(tmp_path / "zoo"), corpus="zoo", shard_size=7)
    assert again["ingested"] == 0 and again["quarantine_rows_written"] == 0
    assert lake.count("audio") == len(ingested) and lake.count("quarantine") == len(quarantined)
    record(SUITE, test="audio zoo", trials=len(quarantined) + len(ingested),
           faults=len(quarantined), lost=0, duplicated=0)


def _csv_corpus(root: Path, sheet: str | bytes, clips: int = 4) -> Path:
    root.mkdir(parents=True)
    for index in range(clips):
        (root / f"c{index}.wav").write_bytes(_wav(_tone(0.3, f0=200 + 40 * index)))
    (root / "labels.csv").write_bytes(sheet.encode() if isinstance(sheet, str) else sheet)
    return root


@pytest.mark.parametrize(("sheet", "message"), [
    ('path,arousal\nc0.wav,"0.5\nc1.wav,0.2\n', "is not valid CSV"),
    ("file,arousal,dominance,valence\nc0.wav,0.1,0.2,0.3\n", "has no 'path' column (found: "
     "file, arousal, dominance, valence)"),
    (b"path,arousal\nc0.wav,0.5\n\xff\xfe.wav,0.1\n", "UTF-8"),
])
def test_unusable_label_sheet_is_one_clear_error_and_writes_nothing(tmp_path, sheet, message):
    root = _csv_corpus(tmp_path / "c", sheet)
    lake = Lake.open(str(tmp_path / "lake"))
    with pytest.raises(RecipeError, match="labels.csv") as caught:
        ingest(lake, str(root), corpus="sheet", recipe="csv")
    assert message in str(caught.value)
    assert lake.count("audio") == 0 and lake.count("quarantine") == 0
    result = CliRunner().invoke(app, ["ingest", str(root), "--corpus", "sheet", "--recipe",
                                      "csv", "--engine", "local", "--lake",
                                      str(tmp_path / "lake")])
    assert result.exit_code == 2 and "error:" in result.output and message in result.output
    assert "Traceback" not in result.output
    record(SUITE, test="unusable label sheet", trials=1, faults=1, lost=0, duplicated=0)


def test_bad_label_rows_are_quarantined_and_the_rest_ingested(tmp_path):
    sheet = ("path,arousal,dominance,valence\n"
             "c0.wav,0.1,0.2,0.3\n"          # fine
             "c1.wav,1.5,0.2,0.3\n"          # arousal out of range
             "c2.wav,0.1,0.2,0.3\n"          # duplicate file name ...
             "c2.wav,0.4,0.5,0.6\n"          # ... second row
             "c3.wav,high,0.2,0.3\n"         # not a number
             "c4.wav\n"                      # wrong number of fields
             "../outside.wav,0.1,0.2,0.3\n"  # escapes the root
             "missing.wav,0.1,0.2,0.3\n")    # audio not there
    root = _csv_corpus(tmp_path / "c", sheet, clips=5)
    lake = Lake.open(str(tmp_path / "lake"))
    summary = ingest(lake, str(root), corpus="rows", recipe="csv")
    rows = lake.read("quarantine").to_pylist()
    reasons = sorted((r["source_path"], r["reason"]) for r in rows)
    assert reasons == sorted([
        ("c1.wav", "label_out_of_range"), ("c2.wav", "duplicate_label"),
        ("c3.wav", "label_invalid"), ("c4.wav", "label_invalid"),
        ("labels.csv#row8", "bad_path"), ("missing.wav", "missing_file"),
    ]), reasons
    by_path = {r["source_path"]: r["message"] for r in rows}
    assert "1.5" in by_path["c1.wav"] and "row 3" in by_path["c1.wav"]
    assert "row 4" in by_path["c2.wav"] and "row 5" in by_path["c2.wav"]
    audio = set(lake.read("audio", columns=["source_path"]).column("source_path").to_pylist())
    assert audio == {"c0.wav"}  # the only file with a good row; bad rows keep their audio out
    assert lake.read("human_labels").column("arousal").to_pylist() == [pytest.approx(0.1)]
    assert summary["quarantined_total"] == len(rows)
    again = ingest(lake, str(root), corpus="rows", recipe="csv")
    assert again["quarantine_rows_written"] == 0 and again["ingested"] == 0
    record(SUITE, test="bad label rows", trials=8, faults=7, lost=0, duplicated=0)
