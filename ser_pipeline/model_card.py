"""Model cards: the ``README.md`` every published version carries (Hugging Face style).

A card has YAML front matter (licence, teacher, corpora, metrics as a ``model-index``), the
model's rows of the paper's table (CCC against the humans and against the teacher per corpus
and split, parameters, int8 size, milliseconds per 5 s clip on one thread, peak RSS), its
robustness under perturbations beside audEERING ser-tests' thresholds when the publisher
ran the suite (the manifest's ``robustness`` section), which file ``ser predict`` serves and
why, and how to run the model with plain ONNX Runtime and with audonnx. Everything comes
from the registry manifest (:class:`ser_pipeline.registry.Manifest`, which already holds
the export's CCC rows, performance figures and robustness results), so a card can be
written at publish time without the analyst database; ``rows`` from the ``paper_table``
report can be passed instead when they are at hand.

Examples:
    >>> print(markdown_table([{"corpus": "demo", "split": "dev", "n": 40,
    ...                        "teacher_arousal": 0.8123}], columns=("corpus", "n",
    ...                                                              "teacher_arousal")))
    | corpus | clips | A vs teacher |
    |---|---:|---:|
    | demo | 40 | 0.812 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from ser_pipeline.export.graph import FP32_FILE, INT8_FILE
from ser_pipeline.report_tables.cells import finite
from ser_pipeline.schemas import LABELS

if TYPE_CHECKING:  # the registry imports this module when it publishes
    from ser_pipeline.registry.manifest import Manifest

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


def table_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """The model's rows of the paper's table, from a registry manifest.

    One row per (corpus, split) in the manifest's ``ccc`` list, with the CCC against the
    human labels and against the teacher side by side, plus the cost columns (the same for
    every row): the figures of the file the version serves by default.
    """
    served = manifest.serving.default_file
    performance = manifest.performance
    figures = None
    if performance is not None:
        figures = performance.int8 if served == INT8_FILE else performance.fp32
    int8 = manifest.files.get(INT8_FILE)
    cost = {
        "params": manifest.params,
        "int8_kb": round(int8.bytes / 1000, 1) if int8 else None,
        "ms_per_5s": finite(figures.latency_ms) if figures else None,
        "peak_rss_mb": finite(figures.peak_rss_increase_mb) if figures else None,
    }
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in manifest.ccc:
        if entry.reference not in ("human", "teacher"):
            continue
        key = (str(entry.corpus or ""), str(entry.split or ""))
        row = grouped.setdefault(key, {"corpus": key[0], "split": key[1], "n": None})
        for dimension in LABELS:
            row[f"{entry.reference}_{dimension}"] = finite(getattr(entry, dimension))
        if entry.reference == "teacher" or row["n"] is None:
            row["n"] = entry.n
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


def robustness_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """The manifest's robustness sections as ``robustness`` table rows (what
    :func:`ser_pipeline.report_tables.robustness_layouts` renders)."""
    out = []
    for section in manifest.robustness:
        context = {"model": f"{manifest.name}@{manifest.version}", "corpus": section.corpus,
                   "split": section.split, "reference": section.reference,
                   "teacher_id": section.teacher_id, "n_clips": section.n_clips,
                   "max_ccc_drop": section.max_ccc_drop,
                   "min_unchanged_share": section.min_unchanged_share,
                   "ci_level": section.ci_level, "ci_method": section.ci_method,
                   "ci_unit": section.ci_unit, "ci_units": section.ci_units,
                   "ci_resamples": section.ci_resamples, "model_file": section.file}
        out += [context | {"perturbation": check.perturbation,
                           "description": check.description} | figure.model_dump()
                for check in section.perturbations for figure in check.dimensions]
    return out


def robustness_markdown(manifest: Manifest) -> str:
    """The card's robustness section body."""
    from ser_pipeline import report_tables

    rows = robustness_rows(manifest)
    if not rows:
        return ("No robustness results were recorded at publish. `ser robustness --model "
                f"{manifest.uri}` measures them (rows in the lake's `robustness` table).")
    files = sorted({s.file for s in manifest.robustness if s.file})
    perturbations = {r["perturbation"]: r["description"] for r in rows}
    described = "\n".join(f"- `{name}`: {text}" for name, text in perturbations.items())
    return (f"`{', '.join(files) or 'the model'}` on seeded perturbations of the dev clips "
            "(`ser_pipeline.perturb`): the drop of CCC from clean audio, with a paired "
            "bootstrap interval, and the share of clips whose prediction moved by less than "
            "0.05, beside audEERING ser-tests' thresholds.\n\n"
            + report_tables.markdown(report_tables.robustness_layouts(rows))
            + f"\n\nPerturbations:\n\n{described}")


def _front_matter(manifest: Manifest, rows: Sequence[Mapping[str, Any]]) -> dict:
    license_id = manifest.license.id or "unknown"
    corpora = sorted({str(c) for c in (manifest.training.corpora or []) if c}
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
                 "knowledge-distillation", "onnx", manifest.student],
        "teacher": manifest.teacher_id,
        "datasets": corpora,
        "metrics": ["ccc"],
        "model-index": [{"name": manifest.name, "results": results}],
    })
    return front


def model_card(manifest: Manifest, *, rows: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The ``README.md`` of a published version, as markdown text.

    Args:
        manifest: The registry manifest of the version.
        rows: The model's rows of the ``paper_table`` report; default
            :func:`table_rows` of the manifest.

    Returns:
        Markdown with YAML front matter (licence, teacher, corpora, metrics).
    """
    rows = list(rows) if rows is not None else table_rows(manifest)
    provenance = manifest.provenance
    serving = manifest.serving
    model_file = serving.default_file
    other = FP32_FILE if model_file == INT8_FILE else INT8_FILE
    front = yaml.safe_dump(_front_matter(manifest, rows), sort_keys=False, allow_unicode=True)
    min_samples = manifest.min_samples or 1024
    warnings = "".join(f"\n> **Warning:** {w}\n" for w in manifest.warnings)
    alternative = (f" `{other}` is published too: `{manifest.uri}#"
                   f"{'int8' if other == INT8_FILE else 'fp32'}` serves it."
                   if other in manifest.files else "")
    return f"""---
{front}---

# {manifest.name} (version {manifest.version})

A `{manifest.student}` speech emotion model ({_cell(manifest.params)} trainable
parameters) distilled from the teacher `{manifest.teacher_id}`. It maps a 16 kHz mono
waveform to **arousal, dominance and valence** (about 0..1, in that order). Normalisation
and the log-mel front end are inside the graph: feed raw samples. Published as
`{manifest.uri}` from training run `{manifest.run_id}`.
{warnings}
## Results

CCC (concordance correlation coefficient, population statistics as `audmetric`) against
the human labels and against the teacher, per corpus and split; the cost columns are
measured on a 5 s clip with one thread, for `{model_file}`.

{markdown_table(rows)}

## Robustness

{robustness_markdown(manifest)}

## Which file to run

`ser predict {manifest.uri}` serves `{model_file}`: {serving.reason}.{alternative}

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
row (pad shorter clips with zeros); rows of one batch must share a length (the model
would see zero padding).

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

- teacher: `{manifest.teacher_id}` (weights sha256 `{provenance.teacher_sha256}`)
- licence: `{manifest.license.id}` ({manifest.license.source or "from the teacher"})
- training run: `{manifest.run_id}`, git `{provenance.git_sha}`
- files: {", ".join(f"`{f}`" for f in manifest.files) or "–"} (sha256 in `manifest.json`)
"""
