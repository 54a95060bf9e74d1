"""What an export produces, as typed records: ``export.json`` is written and read here only.

Every record forbids unknown fields, so a renamed key fails loudly where it is read. The
file carries ``schema`` (:data:`EXPORT_SCHEMA`); an ``export.json`` without one was written
by schema-1 code (a plain dict, before these records) and is converted on reading by
:func:`_from_v1`.

Examples:
    >>> Int8State(withheld=True, reason="int8 parity A 0.970 < 0.98").model_dump()
    {'withheld': True, 'reason': 'int8 parity A 0.970 < 0.98'}
    >>> Int8State(withheld=False, reason=None, why="typo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Int8State
    why
      Extra inputs are not permitted...
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ser_pipeline.cpu import CpuInfo, CpuPeak
from ser_pipeline.export.errors import ExportError

#: ``schema`` of the ``export.json`` this code writes.
EXPORT_SCHEMA = "ser-pipeline/export/2"
EXPORT_FILE = "export.json"


class Record(BaseModel):
    """Base of every export/manifest record: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class ExportedFile(Record):
    path: str
    bytes: int
    sha256: str


class SaturationRisk(Record):
    """An integer product that can saturate on x86 without VNNI (see ``quantize``)."""

    node: str
    op_type: str
    operands: list[str]
    max_abs_weight: int | None
    why: str


class RecipeRecord(Record):
    """An :class:`~ser_pipeline.quantize.Int8Recipe` as applied, with the fp32 nodes."""

    name: str
    mode: str
    quant_format: str | None
    activation_type: str
    weight_type: str
    reduce_range: bool
    per_channel: bool
    op_types: list[str]
    nodes_excluded: list[str]


class Measurement(Record):
    """One file measured in a fresh process (:func:`ser_pipeline.onnx_model.measure`)."""

    latency_ms: float
    latency_ms_p10: float
    latency_ms_p90: float
    load_ms: float
    rss_before_mb: float
    rss_after_mb: float
    peak_rss_increase_mb: float
    repeats: int
    threads: int
    clip_s: float
    gflops_achieved: float | None = None
    fraction_of_fp32_peak: float | None = None


class Candidate(Record):
    """One int8 candidate: how it was built and how it did."""

    method: str
    preprocess: str
    recipe: RecipeRecord
    bytes: int | None = None
    risks: list[SaturationRisk] = []
    error: str | None = None
    passed: bool = False
    ccc_vs_fp32: dict[str, float] | None = None
    #: Largest |int8 - fp32| over the parity clips and dimensions (0..1 scale).
    max_abs_diff_vs_fp32: float | None = None
    latency_ms: float | None = None
    perf: Measurement | None = None


class Quantization(Record):
    """Which int8 candidate ships (``None``: none passed) and every candidate tried."""

    chosen: str | None
    recipe: RecipeRecord | None
    selection: str
    candidates: list[Candidate]


class Latency(Record):
    """fp32 against int8 on one machine, in one process, back to back: what decides which
    file ``ser predict`` serves by default."""

    fp32_ms: float
    int8_ms: float | None
    clip_s: float
    threads: int
    repeats: int


class Int8State(Record):
    withheld: bool
    reason: str | None


class Parity(Record):
    """CCC of ONNX fp32 against torch and of int8 against fp32, on held-out clips.

    ``clips`` counts the parity clips with their perturbed copies (``perturbed`` of them,
    made by ``perturbations`` in turn), drawn from ``corpora``; calibration likewise
    (``calibration_*``). Records written before these fields existed read as empty.
    """

    clips: int
    torch_vs_fp32: dict[str, float]
    int8_vs_fp32: dict[str, float] | None
    max_abs_diff_torch_vs_fp32: float
    thresholds: dict[str, float]
    dynamic_shapes_ok: bool
    int8_passed: bool
    passed: bool
    source: str | None = None
    audio_ids: list[str] = []
    calibration_clips: int | None = None
    int8_max_abs_diff: float | None = None
    corpora: list[str] = []
    perturbed: int = 0
    perturbations: list[str] = []
    calibration_corpora: list[str] = []
    calibration_perturbed: int = 0


class Performance(Record):
    """Latency, added peak RSS and achieved GFLOP/s on a 5 s clip, one thread."""

    clip_s: float
    threads: int
    gflop_per_clip: float
    cpu_peak: CpuPeak
    fp32: Measurement
    int8: Measurement | None = None
    int8_speedup_vs_fp32: float | None


class License(Record):
    """The teacher's licence, inherited by everything distilled from it."""

    id: str
    source: str
    restricts_use: bool | None
    warning: str | None


class CccRow(Record):
    """CCC of the run against one reference on one corpus and split."""

    reference: str
    corpus: str | None
    split: str | None
    source: str
    n: int | None = None
    eval_id: str | None = None
    arousal: float | None = None
    dominance: float | None = None
    valence: float | None = None
    mean: float | None = None


class Provenance(Record):
    """Where the model came from. ``manifest_hash`` is the canonical hash of exactly this
    section, stamped into both ONNX files and copied verbatim into the manifest."""

    run_id: str
    student: str
    student_options: dict[str, Any]
    teacher_id: str | None
    teacher_sha256: str | None
    lake_snapshot: Any
    git_sha: str | None
    checkpoint: str
    checkpoint_sha256: str
    labels: list[str]
    sample_rate: int
    input: str
    output: str


class Training(Record):
    """The training run's settings that the provenance does not already hold."""

    seed: int | None = None
    hyperparams: dict[str, Any] | None = None
    corpora: list[str] | None = None
    split_name: str | None = None
    best_dev_ccc: dict[str, float | None] | None = None


class Target(Record):
    """One of the paper's figures against ours."""

    ours: float | None
    target: float
    met: bool


class RunExport(Record):
    """What exporting a *training run* adds to the files: provenance, licence, CCC."""

    provenance: Provenance
    manifest_hash: str
    params: int | None
    license: License
    ccc: list[CccRow]
    training: Training
    lake: str
    targets: dict[str, Target] | None = None


class ExportResult(Record):
    """Everything an export produced; ``run`` is set when a training run was exported.

    ``machine`` is the CPU that measured parity, latency and performance.
    """

    schema_: str = Field(default=EXPORT_SCHEMA, alias="schema")
    out_dir: str
    files: dict[str, ExportedFile]
    machine: CpuInfo
    min_samples: int
    parity: Parity
    quantization: Quantization
    latency: Latency
    int8: Int8State
    performance: Performance | None = None
    run: RunExport | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        """The ``export.json`` text."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2)

    def save(self) -> Path:
        """Write ``out_dir/export.json``; returns its path."""
        path = Path(self.out_dir) / EXPORT_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportResult:
        """Read an ``export.json`` dict of this or an earlier schema."""
        schema = data.get("schema")
        if schema is None:
            return cls.model_validate(_from_v1(data))
        if schema != EXPORT_SCHEMA:
            raise ExportError(f"export.json has schema {schema!r}; this version reads "
                              f"{EXPORT_SCHEMA!r} and the schema-1 dict: upgrade ser-pipeline")
        return cls.model_validate(data)


def load_export(out_dir: str | Path) -> ExportResult:
    """The result of an earlier export (``out_dir/export.json``), file paths under
    ``out_dir`` wherever the folder has moved since."""
    path = Path(out_dir) / EXPORT_FILE
    if not path.is_file():
        raise ExportError(f"{path} not found: run 'ser export --run RUN_ID --out {out_dir}'")
    result = ExportResult.from_dict(json.loads(path.read_text()))
    for name, info in result.files.items():
        info.path = os.path.join(str(out_dir), name)
    result.out_dir = str(out_dir)
    return result


def _from_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 ``export.json`` (one dict; run id, student and teacher repeated) as the
    fields of :class:`ExportResult`."""
    quantization = old["quantization"]
    parity = {k: v for k, v in old["parity"].items() if k != "machine"}
    performance = old.get("performance")
    if performance is not None:
        performance = {k: v for k, v in performance.items() if k != "machine"}
    metadata = old.get("metadata") or {}
    run = None
    if old.get("provenance") is not None:
        settings = old.get("run") or {}
        run = {"provenance": old["provenance"], "manifest_hash": old["manifest_hash"],
               "params": old.get("params"), "license": old["license"],
               "ccc": old.get("ccc") or [], "lake": old.get("lake") or "",
               "training": {k: settings.get(k) for k in Training.model_fields},
               "targets": old.get("targets")}
    return {
        "out_dir": old["out_dir"], "files": old["files"], "machine": old["parity"]["machine"],
        # schema-1 OnnxModel padded files without a declared minimum to 1,600 samples
        "min_samples": int(metadata.get("min_samples", 1600)),
        "parity": parity,
        "quantization": {k: quantization[k] for k in ("chosen", "recipe", "selection",
                                                      "candidates")},
        "latency": {"fp32_ms": quantization["fp32_latency_ms"],
                    "int8_ms": quantization.get("int8_latency_ms"), "clip_s": 5.0,
                    "threads": 1, "repeats": 10},
        "int8": old["int8"], "performance": performance, "run": run,
    }
