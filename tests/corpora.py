"""Build small corpus trees in the corpora's published layouts (GUIDE §5) for tests.

Every clip is real speech from tests/data with its own gain and length, so no two files
share bytes (identical bytes would be deduplicated by ingest).
"""

from __future__ import annotations

import io
from pathlib import Path

import soundfile as sf

DATA = Path(__file__).parent / "data"
_SPEECH = ["hello_22k_pcm16.wav", "morning_44k_stereo.flac", "thanks_16k.ogg",
           "yes_8k_pcm24.wav", "okay_16k.flac"]


def clip_bytes(index: int, *, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """A distinct short speech clip (real espeak-ng speech, varied gain and length)."""
    signal, rate = sf.read(DATA / _SPEECH[index % len(_SPEECH)], dtype="float32")
    gain = 0.5 + 0.4 * ((index * 37) % 11) / 10
    signal = signal[: len(signal) - 7 * index] * gain
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def write_clip(path: Path, index: int, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}.get(path.suffix, "WAV")
    subtype = {"FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}.get(fmt, "PCM_16")
    path.write_bytes(clip_bytes(index, fmt=options.get("fmt", fmt),
                                subtype=options.get("subtype", subtype)))
    return path


MSP_ROWS = [
    # FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
    ("MSP-PODCAST_0001_0008.wav", "N", "4.0", "4.2", "3.8", "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0017.wav", "A", "6.4", "2.0", "5.6", "127", "Female", "Development"),
    ("MSP-PODCAST_0002_0003.wav", "H", "5.2", "6.6", "4.4", "Unknown", "Male", "Test1"),
    ("MSP-PODCAST_0003_0001.wav", "S", "1.0", "1.8", "7.0", "8", "Male", "Test2"),
]


def build_msp_podcast(root: Path, *, extra_unlabeled: int = 1) -> Path:
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    for index, row in enumerate(MSP_ROWS):
        lines.append(",".join(row))
        write_clip(root / "Audios" / row[0], index)
    for extra in range(extra_unlabeled):
        write_clip(root / "Audios" / f"MSP-PODCAST_0100_{extra:04d}.wav", 50 + extra)
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    return root


IEMOCAP_LINES = {
    "Ses01F_impro01": [
        ("6.2901 - 8.2357", "Ses01F_impro01_F000", "neu", "2.5000, 2.5000, 2.5000"),
        ("10.0100 - 11.3925", "Ses01F_impro01_M001", "fru", "2.0000, 3.5000, 3.0000"),
    ],
    "Ses01F_script01_1": [
        ("1.0000 - 3.5000", "Ses01F_script01_1_F002", "ang", "1.0000, 5.0000, 4.5000"),
    ],
}


def build_iemocap(root: Path) -> Path:
    session = root / "Session1"
    evaluation = session / "dialog" / "EmoEvaluation"
    evaluation.mkdir(parents=True, exist_ok=True)
    index = 0
    for dialog, rows in IEMOCAP_LINES.items():
        text = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for span, utt, cat, vad in rows:
            text.append(f"[{span}]\t{utt}\t{cat}\t[{vad}]")
            text.append("C-E2:\tNeutral;\t()")
            text.append("A-E3:\tval 3; act 2; dom  2;\t()")
            text.append("")
            write_clip(session / "sentences" / "wav" / dialog / f"{utt}.wav", index)
            index += 1
        (evaluation / f"{dialog}.txt").write_text("\n".join(text) + "\n")
    # The full dialog recording is not an utterance and must not be ingested.
    write_clip(session / "dialog" / "wav" / "Ses01F_impro01.wav", 99)
    (evaluation / "Categorical").mkdir(exist_ok=True)
    return root


def build_audformat(root: Path) -> Path:
    import audformat
    import pandas as pd

    files = [f"audio/{name}.wav" for name in ("a", "b", "c")]
    for index, file in enumerate(files):
        write_clip(root / file, 20 + index)
    write_clip(root / "audio" / "d.wav", 30)  # not in any table: unlabeled pool
    db = audformat.Database("toy-ser", source="tests", usage="unrestricted")
    db.schemes["arousal"] = audformat.Scheme("float", minimum=-1.0, maximum=1.0)
    db.schemes["dominance"] = audformat.Scheme("float", minimum=-1.0, maximum=1.0)
    db.schemes["valence"] = audformat.Scheme("float", minimum=-1.0, maximum=1.0)
    # the speakers' gender as audformat databases record it: in the speaker scheme's labels
    db.schemes["speaker"] = audformat.Scheme("str", labels={
        "spk0": {"gender": "female"}, "spk1": {"gender": "male"}})
    db.splits["train"] = audformat.Split("train")
    db.splits["test"] = audformat.Split("test")
    train = audformat.filewise_index(files[:2])
    test = audformat.filewise_index(files[2:])
    db["emotion.train"] = audformat.Table(train, split_id="train")
    db["emotion.test"] = audformat.Table(test, split_id="test")
    for table, values in (("emotion.train", [(-1.0, 0.0, 1.0), (0.5, 0.5, -0.5)]),
                          ("emotion.test", [(1.0, -1.0, 0.0)])):
        for position, dimension in enumerate(("arousal", "dominance", "valence")):
            db[table][dimension] = audformat.Column(scheme_id=dimension)
            db[table][dimension].set([v[position] for v in values])
        db[table]["speaker"] = audformat.Column(scheme_id="speaker")
        db[table]["speaker"].set([f"spk{i}" for i in range(len(values))])
    # a filewise gender column wins over the speaker's labels (c.wav: spk0, "M")
    db["emotion.test"]["gender"] = audformat.Column()
    db["emotion.test"]["gender"].set(["M"])
    segments = audformat.segmented_index(files[0], starts=[0.0], ends=[pd.Timedelta(0.5, "s")])
    db["segments"] = audformat.Table(segments)
    db.save(root)
    return root
