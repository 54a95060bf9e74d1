"""The manifest of a published version: a typed record, written and read here only.

``manifest.json`` carries ``schema`` (:data:`MANIFEST_SCHEMA`). Each fact is stored once:
run, student, teacher and lake snapshot live in ``provenance`` (the section whose
canonical hash both ONNX files carry as ``manifest_hash``), and the other sections refer
to them instead of repeating them. Manifests of schema 1 (:data:`MANIFEST_SCHEMA_V1`,
where run id, student and teacher appeared three times each) are converted on reading by
:func:`_from_v1`, so every version ever published still lists, verifies and serves.
Fields are documented in ``docs/stages/registry.md``.

Which file ``ser predict`` serves by default is decided at publish, from fp32 and int8
latencies measured on the publishing machine (:func:`serving_for`; the rule itself,
:func:`choose_serving`, lives in :mod:`~ser_pipeline.registry.serving`).

Examples:
    >>> serving = choose_serving({"model.onnx", "model.int8.onnx"}, fp32_ms=5.0,
    ...                          int8_ms=9.0, clip_s=5.0, threads=1, kind="AVX2-only, no VNNI")
    >>> serving.default_file
    'model.onnx'
    >>> print(serving.reason)
    fp32 is faster: 5.0 ms vs int8 9.0 ms per 5 s clip, 1 thread, on AVX2-only, no VNNI
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from typing import Any

from pydantic import Field, PrivateAttr, computed_field, model_validator

from ser_pipeline.cpu import CpuInfo, CpuPeak, cpu_info
from ser_pipeline.export import FP32_FILE, INT8_FILE, ExportResult
from ser_pipeline.export.result import (
    CccRow,
    License,
    Parity,
    Provenance,
    RecipeRecord,
    Record,
    Training,
)
from ser_pipeline.registry.errors import RegistryError, redact
from ser_pipeline.registry.serving import Serving, choose_serving

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "ser-pipeline/model-manifest/2"
MANIFEST_SCHEMA_V1 = "ser-pipeline/model-manifest/1"
_PACKAGES = ("ser-pipeline", "torch", "onnx", "onnxruntime", "onnxscript", "numpy",
             "audmetric", "s3fs")


class FileEntry(Record):
    sha256: str
    bytes: int


class Int8Section(Record):
    """Whether an int8 file was published, how it was made, or why it was withheld."""

    withheld: bool
    reason: str | None
    recipe: RecipeRecord | None = None
    selection: str | None = None


class Figures(Record):
    latency_ms: float | None = None
    peak_rss_increase_mb: float | None = None
    gflops_achieved: float | None = None
    fraction_of_fp32_peak: float | None = None


class ManifestPerformance(Record):
    """Fresh-process figures on a 5 s clip, one thread, measured at export."""

    gflop_per_clip: float | None
    cpu_peak: CpuPeak | None
    int8_speedup_vs_fp32: float | None
    fp32: Figures
    int8: Figures | None = None


class GateRecord(Record):
    """The no-regression gate's decision at publish (``docs/stages/registry.md``).

    Attributes:
        passed: False when the candidate was significantly worse than ``compared_with``
            on some dimension of some gate corpus, or could not be compared with it.
        promoted: Whether this publish moved ``latest`` to the version: passed, or
            ``allow_regression``.
        reason: One line saying why.
        compared_with: ``name@version`` that ``latest`` pointed at (None: first version).
        corpora: Gate corpora.
        split: Gate split.
        reference: ``teacher`` or ``human``.
        teacher_id: The reference teacher.
        regressed: ``corpus:dimension`` entries that were significantly worse.
        allow_regression: Whether ``--allow-regression`` was given.
        comparison_ids: Keys of the gate's rows in the lake's ``comparisons`` table.
    """

    passed: bool
    promoted: bool
    reason: str
    compared_with: str | None = None
    corpora: list[str] = []
    split: str | None = None
    reference: str | None = None
    teacher_id: str | None = None
    regressed: list[str] = []
    allow_regression: bool = False
    comparison_ids: list[str] = []


class RobustnessFigure(Record):
    """One dimension under one perturbation (the ``robustness`` table's figures)."""

    dimension: str
    clean_ccc: float | None
    clean_ccc_lo: float | None = None
    clean_ccc_hi: float | None = None
    perturbed_ccc: float | None
    perturbed_ccc_lo: float | None = None
    perturbed_ccc_hi: float | None = None
    ccc_drop: float | None
    ccc_drop_lo: float | None = None
    ccc_drop_hi: float | None = None
    unchanged_share: float | None
    passed_drop: bool
    passed_unchanged: bool
    passed: bool


class RobustnessCheck(Record):
    """One perturbation: passed when every dimension passed."""

    perturbation: str
    description: str
    passed: bool
    dimensions: list[RobustnessFigure]


class RobustnessSection(Record):
    """The robustness suite run on ``file`` at publish, on one corpus and split against
    one reference (``ser_pipeline.robustness_stage``), with ser-tests' thresholds."""

    file: str | None
    corpus: str
    split: str
    reference: str
    teacher_id: str | None
    n_clips: int
    max_ccc_drop: float
    min_unchanged_share: float
    ci_level: float | None = None
    ci_method: str | None = None
    ci_unit: str | None = None
    ci_units: int | None = None
    ci_resamples: int | None = None
    perturbation_seed: int | None = None
    perturbations: list[RobustnessCheck]


class ManifestTraining(Training):
    """The run's settings (its id and student are in ``provenance``) and its lake."""

    lake: str | None = None


class Manifest(Record):
    """One published version (see ``docs/stages/registry.md`` for every field)."""

    schema_: str = Field(default=MANIFEST_SCHEMA, alias="schema")
    name: str
    version: int
    published_at: str
    provenance: Provenance
    manifest_hash: str
    params: int | None
    min_samples: int | None
    files: dict[str, FileEntry]
    serving: Serving
    int8: Int8Section
    parity: Parity
    machine: CpuInfo | None
    performance: ManifestPerformance | None = None
    training: ManifestTraining
    ccc: list[CccRow]
    license: License
    packages: dict[str, str | None]
    warnings: list[str]
    extra: dict[str, Any] = {}
    robustness: list[RobustnessSection] = []
    #: The no-regression gate at publish (None: published without one, or before gates).
    gate: GateRecord | None = None
    _read_from: str = PrivateAttr(default=MANIFEST_SCHEMA)

    @model_validator(mode="after")
    def _serves_a_published_file(self) -> Manifest:
        if self.serving.default_file not in self.files:
            raise ValueError(f"serving.default_file {self.serving.default_file!r} is not "
                             f"among the files {sorted(self.files)}")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def uri(self) -> str:
        """``registry://name@version`` (derived; in the JSON for SQL readers)."""
        return f"registry://{self.name}@{self.version}"

    @property
    def student(self) -> str:
        return self.provenance.student

    @property
    def run_id(self) -> str:
        return self.provenance.run_id

    @property
    def teacher_id(self) -> str | None:
        return self.provenance.teacher_id

    @property
    def read_from_schema(self) -> str:
        """The schema the JSON was written in (this one, or an older one converted)."""
        return self._read_from

    def to_json(self) -> str:
        """The ``manifest.json`` text."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2,
                          sort_keys=True)


def read_manifest(data: bytes | str | dict[str, Any]) -> Manifest:
    """A manifest from its JSON (bytes, text or parsed), of this schema or schema 1.

    Raises:
        RegistryError: an unknown schema (written by a newer ser-pipeline).
    """
    raw = dict(data) if isinstance(data, dict) else json.loads(data)
    schema = raw.get("schema")
    raw.pop("uri", None)  # derived from name and version
    if schema == MANIFEST_SCHEMA_V1:
        manifest = Manifest.model_validate(_from_v1(raw))
        manifest._read_from = MANIFEST_SCHEMA_V1
        return manifest
    if schema != MANIFEST_SCHEMA:
        raise RegistryError(f"manifest schema {schema!r} is not one this version reads "
                            f"({MANIFEST_SCHEMA}, {MANIFEST_SCHEMA_V1}): upgrade ser-pipeline")
    return Manifest.model_validate(raw)


def serving_for(export: ExportResult) -> Serving:
    """:func:`choose_serving` with latencies from this machine: the export's own figures
    when it ran on a CPU like this one, else both files timed again here."""
    from ser_pipeline.onnx_model import latency_ms

    here = cpu_info()
    latency = export.latency
    fp32_ms, int8_ms = latency.fp32_ms, latency.int8_ms
    if here != export.machine:
        fp32_ms = latency_ms(export.files[FP32_FILE].path, seconds=latency.clip_s,
                             repeats=latency.repeats, threads=latency.threads)
        int8_ms = latency_ms(export.files[INT8_FILE].path, seconds=latency.clip_s,
                             repeats=latency.repeats, threads=latency.threads) \
            if INT8_FILE in export.files else None
    serving = choose_serving(export.files, fp32_ms=fp32_ms, int8_ms=int8_ms,
                             clip_s=latency.clip_s, threads=latency.threads, kind=here.kind,
                             withheld_reason=export.int8.reason)
    serving.measured_on = here
    return serving


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in _PACKAGES:
        try:
            out[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            out[package] = None
    return out


def build_manifest(export: ExportResult, *, name: str, version: int,
                   files: dict[str, FileEntry], serving: Serving,
                   extra: dict[str, Any] | None = None,
                   robustness: list[RobustnessSection] | None = None,
                   gate: GateRecord | None = None) -> Manifest:
    """The manifest of ``export`` published as ``name@version`` (with the robustness
    suite's results when the publisher ran it; a warning says so if it ran on another
    file than the one served), and the no-regression gate's decision."""
    run = export.run
    if run is None:  # Registry.publish refuses these before writing anything
        raise RegistryError("this export has no training run (export_model's result)")
    warnings = [w for w in [run.license.warning] if w]
    if export.int8.withheld:
        warnings.append(f"int8 withheld: {export.int8.reason}; fp32 is served")
    tested = sorted({section.file for section in robustness or [] if section.file})
    if tested and tested != [serving.default_file]:
        warnings.append(f"robustness was measured on {', '.join(tested)}; "
                        f"{serving.default_file} is served")
    perf = export.performance
    performance = None if perf is None else ManifestPerformance(
        gflop_per_clip=perf.gflop_per_clip, cpu_peak=perf.cpu_peak,
        int8_speedup_vs_fp32=perf.int8_speedup_vs_fp32,
        fp32=Figures(**perf.fp32.model_dump(include=set(Figures.model_fields))),
        int8=Figures(**perf.int8.model_dump(include=set(Figures.model_fields)))
        if perf.int8 else None)
    return Manifest(
        name=name, version=version, published_at=datetime.now(timezone.utc).isoformat(),
        provenance=run.provenance, manifest_hash=run.manifest_hash, params=run.params,
        min_samples=export.min_samples, files=files, serving=serving,
        int8=Int8Section(withheld=export.int8.withheld, reason=export.int8.reason,
                         recipe=export.quantization.recipe,
                         selection=export.quantization.selection),
        parity=export.parity.model_copy(update={"audio_ids": []}), machine=export.machine,
        performance=performance,
        training=ManifestTraining(**run.training.model_dump(), lake=redact(run.lake)),
        ccc=run.ccc, license=run.license, packages=package_versions(), warnings=warnings,
        extra=dict(extra or {}), robustness=list(robustness or []), gate=gate)


#: Top-level keys of a schema-1 manifest (anything else came from ``publish(extra=)``).
_V1_KEYS = {"schema", "name", "version", "uri", "published_at", "files", "default_file",
            "int8", "input", "output", "labels", "student", "run_id", "teacher_id", "params",
            "size_bytes", "ccc", "parity", "teacher", "training_run", "lake_snapshot",
            "git_sha", "provenance", "manifest_hash", "performance", "packages", "license",
            "warnings"}


def _from_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest as the fields of :class:`Manifest`.

    Its ``int8`` section recorded fp32 and int8 latencies from the exporting machine;
    when both are there they decide the file served, as for new manifests, else int8 is
    served as schema-1 code did, and the serving reason says so.
    """
    int8 = old["int8"]
    machine = int8.get("parity_machine") or old["parity"].get("machine")
    files = {name: {"sha256": info["sha256"], "bytes": info["bytes"]}
             for name, info in old["files"].items()}
    serving = choose_serving(files, fp32_ms=int8.get("fp32_latency_ms"),
                             int8_ms=int8.get("int8_latency_ms"), clip_s=5.0, threads=1,
                             kind=(machine or {}).get("kind"),
                             withheld_reason=int8.get("reason"))
    serving.reason += f" (read from a {MANIFEST_SCHEMA_V1} manifest)"
    serving.measured_on = CpuInfo(**machine) if machine else None
    training = {k: v for k, v in (old.get("training_run") or {}).items()
                if k not in ("run_id", "student", "params")}
    return {
        "name": old["name"], "version": old["version"], "published_at": old["published_at"],
        "provenance": old["provenance"], "manifest_hash": old["manifest_hash"],
        "params": old.get("params"), "min_samples": (old.get("input") or {}).get("min_samples"),
        "files": files, "serving": serving.model_dump(),
        "int8": {k: int8.get(k) for k in ("withheld", "reason", "recipe", "selection")},
        "parity": {k: v for k, v in old["parity"].items() if k != "machine"},
        "machine": machine, "performance": old.get("performance") or None,
        "training": training, "ccc": old.get("ccc") or [], "license": old["license"],
        "packages": old.get("packages") or {}, "warnings": old.get("warnings") or [],
        "extra": {k: v for k, v in old.items() if k not in _V1_KEYS},
    }
