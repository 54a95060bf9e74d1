"""Model cards: the ``README.md`` every published version carries (Hugging Face style).

A card has YAML front matter (licence, teacher, corpora, metrics as a ``model-index``), the
model's rows of the paper's table (CCC against the humans and against the teacher per corpus
and split, parameters, int8 size, milliseconds per 5 s clip on one thread, peak RSS), and how
to run the model with plain ONNX Runtime and with audonnx. Everything comes from the
registry manifest (which already holds the export's CCC rows and performance figures), so a
card can be written at publish time without the analyst database; ``rows`` from the
``paper_table`` report can be passed instead when they are at hand.

Examples:
    >>> card = model_card({"name": "ser-wav2small", "version": 1, "student": "wav2small",
    ...                    "params": 10897, "license": {"id": "cc-by-nc-sa-4.0"},
    ...                    "teacher": {"id": "w2v2-tiny"}, "ccc": []})
    >>> card.startswith("---\\nlicense: cc-by-nc-sa-4.0")
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ser_pipeline.schemas import LABELS

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CARD_FILE = "README.md"

#: Columns of a card's table row, in order (a subset of the ``paper_table`` report).
ROW_COLUMNS: tuple[str, ...] = (
    "corpus", "split", "n", "human_arousal", "human_dominance", "human_valence",
    "teacher_arousal", "teacher_dominance", "teacher_valence", "params", "int8_kb",
    "ms_per_5s", "peak_rss_mb",
)
_HEADERS = {
    "corpus": "corpus", "split": "split", "n": "clips",
    "human_arousal": "A vs human", "human_dominance": "D vs human",
    "human_valence": "V vs human", "teacher_arousal": "A vs teacher",
    "teacher_dominance": "D vs teacher", "teacher_valence": "V vs teacher",
    "params": "params", "int8_kb": "int8 KB", "ms_per_5s": "ms / 5 s clip (1 thread)",
    "peak_rss_mb": "peak RSS MB",
}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def table_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model's rows of the paper's table, from a registry manifest.

    One row per (corpus, split) in the manifest's ``ccc`` list, with the CCC against the
    human labels and against the teacher side by side, plus the cost columns (the same for
    every row). The int8 figures are used when an int8 file was published, else fp32.
    """
    files = manifest.get("files") or {}
    performance = manifest.get("performance") or {}
    precision = "int8" if INT8_FILE in files else "fp32"
    figures = performance.get(precision) or {}
    int8 = (files.get(INT8_FILE) or {}).get("bytes")
    cost = {
        "params": manifest.get("params"),
        "int8_kb": round(int8 / 1000, 1) if int8 else None,
        "ms_per_5s": _number(figures.get("latency_ms")),
        "peak_rss_mb": _number(figures.get("peak_rss_increase_mb")),
    }
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in manifest.get("ccc") or []:
        reference = entry.get("reference")
        if reference not in ("human", "teacher"):
            continue
        key = (str(entry.get("corpus") or ""), str(entry.get("split") or ""))
        row = grouped.setdefault(key, {"corpus": key[0], "split": key[1], "n": None})
        for dimension in LABELS:
            row[f"{reference}_{dimension}"] = _number(entry.get(dimension))
        if reference == "teacher" or row["n"] is None:
            row["n"] = entry.get("n")
    rows = []
    for key in sorted(grouped):
        row = {column: None for column in ROW_COLUMNS} | grouped[key] | cost
        rows.append(row)
    return rows or [{column: None for column in ROW_COLUMNS} | cost]


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        # CCC to three decimals; sizes and timings to one
        return f"{value:.3f}" if column.startswith(("human_", "teacher_")) else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]],
                   columns: Sequence[str] = ROW_COLUMNS) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (missing values shown as ``–``)."""
    lines = ["| " + " | ".join(_HEADERS.get(c, c) for c in columns) + " |",
             "|" + "|".join("---" if c in ("corpus", "split") else "---:" for c in columns)
             + "|"]
    lines += ["| " + " | ".join(_cell(row.get(c), c) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _front_matter(manifest: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict:
    license_id = (manifest.get("license") or {}).get("id") or "unknown"
    teacher = (manifest.get("teacher") or {}).get("id") or manifest.get("teacher_id")
    run = manifest.get("training_run") or {}
    corpora = sorted({str(c) for c in (run.get("corpora") or []) if c}
                     | {r["corpus"] for r in rows if r.get("corpus")})
    results = []
    for row in rows:
        metrics = [{"type": "ccc", "name": f"CCC {dimension} vs {reference}",
                    "value": round(row[f"{reference}_{dimension}"], 4)}
                   for reference in ("teacher", "human") for dimension in LABELS
                   if row.get(f"{reference}_{dimension}") is not None]
        if metrics and row.get("corpus"):
            results.append({
                "task": {"type": "audio-classification",
                         "name": "Speech emotion regression (arousal, dominance, valence)"},
                "dataset": {"name": row["corpus"], "type": row["corpus"],
                            "split": row.get("split") or "all"},
                "metrics": metrics,
            })
    front: dict[str, Any] = {"license": license_id if license_id != "unknown" else "other"}
    if license_id == "unknown":
        front["license_name"] = "unknown"
    front.update({
        "library_name": "onnx",
        "pipeline_tag": "audio-classification",
        "tags": ["speech-emotion-recognition", "arousal", "dominance", "valence",
                 "knowledge-distillation", "onnx", str(manifest.get("student") or "student")],
        "teacher": teacher,
        "datasets": corpora,
        "metrics": ["ccc"],
        "model-index": [{"name": str(manifest.get("name")), "results": results}],
    })
    return front


def model_card(manifest: Mapping[str, Any], *,
               rows: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The ``README.md`` of a published version, as markdown text.

    Args:
        manifest: The registry manifest of the version (``registry.Registry.publish``).
        rows: The model's rows of the ``paper_table`` report; default
            :func:`table_rows` of the manifest.

    Returns:
        Markdown with YAML front matter (licence, teacher, corpora, metrics).
    """
    rows = list(rows) if rows is not None else table_rows(manifest)
    name, version = manifest.get("name"), manifest.get("version")
    files = manifest.get("files") or {}
    default = manifest.get("default_file")
    model_file = default if default in files else (INT8_FILE if INT8_FILE in files
                                                   else FP32_FILE)
    license_info = manifest.get("license") or {}
    teacher = manifest.get("teacher") or {}
    front = yaml.safe_dump(_front_matter(manifest, rows), sort_keys=False, allow_unicode=True)
    min_samples = (manifest.get("input") or {}).get("min_samples") or 1024
    warnings = "".join(f"\n> **Warning:** {w}\n" for w in manifest.get("warnings") or [])
    return f"""---
{front}---

# {name} (version {version})

A `{manifest.get("student")}` speech emotion model ({_cell(manifest.get("params"))} trainable
parameters) distilled from the teacher `{teacher.get("id") or manifest.get("teacher_id")}`. It
maps a 16 kHz mono waveform to **arousal, dominance and valence** (about 0..1, in that
order). Normalisation and the log-mel front end are inside the graph: feed raw samples.
Published as `{manifest.get("uri")}` from training run `{manifest.get("run_id")}`.
{warnings}
## Results

CCC (concordance correlation coefficient, population statistics as `audmetric`) against
the human labels and against the teacher, per corpus and split; the cost columns are
measured on a 5 s clip with one thread.

{markdown_table(rows)}

## Use with ONNX Runtime

```python
import numpy as np
import onnxruntime as ort
import soundfile as sf
import soxr

signal, rate = sf.read("speech.wav", dtype="float32", always_2d=True)
signal = signal.mean(axis=1)  # mono
if rate != 16000:
    signal = soxr.resample(signal, rate, 16000)
session = ort.InferenceSession("{model_file}", providers=["CPUExecutionProvider"])
(logits,) = session.run(["logits"], {{"signal": signal[None, :].astype(np.float32)}})
arousal, dominance, valence = logits[0]
```

The input `signal` is `float32 [batch, samples]` with at least {min_samples} samples per
row; rows of one batch must share a length (the model would see zero padding).

## Use with audonnx

```python
import audonnx
import numpy as np

model = audonnx.load(".")  # this folder: model.yaml names {FP32_FILE} and the labels
x = signal[None, :].astype(np.float32)
logits = model.sess.run(["logits"], {{"signal": x}})[0]
print(dict(zip(model.labels["logits"], logits[0])))
```

`audonnx.load` reads `model.yaml` and loads the fp32 model with its labels. audonnx
1.0.1's `model(signal, sampling_rate)` reshapes the input to the declared shape, which fails
for this graph's two dynamic dimensions, so call its ONNX Runtime session as above.

## Provenance

- teacher: `{teacher.get("id")}` (weights sha256 `{teacher.get("weights_sha256")}`)
- licence: `{license_info.get("id")}` ({license_info.get("source") or "from the teacher"})
- training run: `{manifest.get("run_id")}`, git `{manifest.get("git_sha")}`
- files: {", ".join(f"`{f}`" for f in files) or "–"} (sha256 in `manifest.json`)
"""
