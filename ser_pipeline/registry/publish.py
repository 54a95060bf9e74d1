"""Publishing: a new immutable version, written so that readers never see half of it.

The version is claimed by the exclusive create of its ``model.onnx``; the other files
follow, the manifest comes last (a version exists iff it has one), and ``latest.json``
moves forward by compare-and-swap only once the manifest is there, and only when the
no-regression gate (:mod:`ser_pipeline.registry.gate`) let the version through.
``publish_run`` is the whole ``ser publish``: export a run, gate it, publish it.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:  # errors botocore raises without translating them to OSError (connection, timeout)
    from botocore.exceptions import BotoCoreError
except ImportError:  # pragma: no cover - s3fs (and botocore) are dependencies
    BotoCoreError = OSError  # type: ignore[misc,assignment]

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.export import FP32_FILE, INT8_FILE, OUTPUT_NAME, ExportResult, load_export
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.registry.errors import (
    IntegrityError,
    RegistryError,
    VersionExistsError,
    redact,
)
from ser_pipeline.registry.manifest import (
    MANIFEST,
    FileEntry,
    GateRecord,
    Manifest,
    RobustnessSection,
    build_manifest,
    serving_for,
)
from ser_pipeline.registry.store import LATEST, YAML_FILE, RegistryStore
from ser_pipeline.schemas import LABELS
from ser_pipeline.storage import StorageError, safe_name

if TYPE_CHECKING:
    from ser_pipeline.lake import Lake


def audonnx_yaml(model_file: str = FP32_FILE) -> str:
    """``model.yaml`` in audobject's format, so ``audonnx.load(folder)`` finds the model."""
    labels = "\n".join(f"    - {label}" for label in LABELS)
    return (f"$audonnx.core.model.Model==1.0.1:\n  path: {model_file}\n  labels:\n"
            f"    {OUTPUT_NAME}:\n{labels}\n  transform: null\n")


class Registry(RegistryStore):
    """Publish, list, show and fetch models (the read side is :class:`RegistryStore`).

    Examples:
        >>> import tempfile
        >>> Registry(tempfile.mkdtemp()).names()
        []
    """

    # -- publish ---------------------------------------------------------------------------
    def publish(self, export: ExportResult | str | Path, *, name: str,
                version: int | None = None, record_db: bool = True,
                extra: dict[str, Any] | None = None,
                robustness: list[RobustnessSection] | None = None,
                gate: GateRecord | None = None) -> Manifest:
        """Publish an export as a new immutable version and move ``latest`` to it, unless
        the no-regression gate held it back.

        Args:
            export: What :func:`ser_pipeline.export.export_run` returned, or its output
                folder (with ``export.json``).
            name: Model name (letters, digits, ``.``, ``_``, ``-``).
            version: Explicit version number; default the next free one.
            record_db: Also insert the manifest into the DuckDB ``models`` table.
            extra: More facts for the manifest's ``extra`` section (e.g. a description).
            robustness: The robustness suite's results on the served file, for the
                manifest and the model card
                (:func:`ser_pipeline.robustness_stage.publish_with_robustness`).
            gate: The gate's decision (:func:`ser_pipeline.registry.gate.gate_candidate`),
                recorded in the manifest; ``latest`` moves only when ``gate.promoted``.
                None (no gate): ``latest`` moves.

        Returns:
            The manifest as written.

        Raises:
            VersionExistsError: ``version`` is taken (the registry is left unchanged).
            RegistryError: not the export of a run, parity did not pass, the export files
                changed since export, or the registry cannot be written.
        """
        safe_name(name, what="model name")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise ValueError(f"version must be an integer >= 1, got {version!r}")
        if not isinstance(export, ExportResult):
            export = load_export(export)
        if export.run is None:
            raise RegistryError("this export has no training run (export_model's result): "
                                "publish the export of a run (ser export --run)")
        run_id = export.run.provenance.run_id
        if not export.parity.passed:
            raise RegistryError(
                f"refusing to publish run {run_id}: parity did not pass "
                f"(torch_vs_fp32={export.parity.torch_vs_fp32}, "
                f"int8_vs_fp32={export.parity.int8_vs_fp32})")
        payloads = {}
        for file_name, info in export.files.items():
            data = Path(info.path).read_bytes()
            if sha256_bytes(data) != info.sha256:
                raise IntegrityError(f"{info.path} changed since it was exported "
                                     "(sha256 differs): export again")
            payloads[file_name] = data
        if FP32_FILE not in payloads or (INT8_FILE not in payloads
                                         and not export.int8.withheld):
            raise RegistryError(f"export of run {run_id} lacks "
                                f"{FP32_FILE if FP32_FILE not in payloads else INT8_FILE}"
                                ": export again")
        payloads[YAML_FILE] = audonnx_yaml().encode()
        files = {file_name: FileEntry(sha256=sha256_bytes(data), bytes=len(data))
                 for file_name, data in payloads.items()}
        serving = serving_for(export)

        try:
            version = self._claim(name, version, payloads[FP32_FILE])
            folder = self._dir(name, version)
            for file_name in (n for n in (INT8_FILE, YAML_FILE) if n in payloads):
                if not self._create_in_claimed(f"{folder}/{file_name}", payloads[file_name]):
                    raise RegistryError(f"{self._uri(folder, file_name)} appeared during the "
                                        "publish: another writer is using this version")
            manifest = build_manifest(export, name=name, version=version, files=files,
                                      serving=serving, extra=extra, robustness=robustness,
                                      gate=gate)
            from ser_pipeline.model_card import CARD_FILE, model_card  # README.md (HF-style)

            self._create_in_claimed(f"{folder}/{CARD_FILE}", model_card(manifest).encode())
            self._write_manifest(folder, manifest)
            if gate is None or gate.promoted:
                self._update_latest(name, version, manifest)
        except RegistryError:
            raise
        except (OSError, StorageError, PermissionError, BotoCoreError) as error:
            raise RegistryError(
                f"registry {redact(self.url)} cannot be written ({type(error).__name__}: "
                f"{redact(str(error), self.settings)}); check the URL, bucket and credentials"
            ) from None
        if record_db:
            self.record_db(manifest)
        return manifest

    def _claim(self, name: str, version: int | None, fp32: bytes) -> int:
        """Claim a version by creating its ``model.onnx`` exclusively."""
        if version is not None:
            folder = self._dir(name, version)
            if not self.storage.write_bytes(f"{folder}/{FP32_FILE}", fp32, exclusive=True):
                state = ("published" if self.storage.exists(f"{folder}/{MANIFEST}") else
                         "left by an interrupted publish (no manifest)")
                raise VersionExistsError(
                    f"{name}@{version} already exists ({state}); versions are never "
                    "overwritten: omit --version to take the next free one")
            return version
        candidate = (max(self._version_dirs(name), default=0)) + 1
        for _ in range(1000):
            if self.storage.write_bytes(f"{self._dir(name, candidate)}/{FP32_FILE}", fp32,
                                        exclusive=True):
                return candidate
            candidate += 1  # someone else took it (or an interrupted publish did)
        raise RegistryError(f"could not claim a version for {name}: 1000 attempts collided")

    def _create_in_claimed(self, relative: str, data: bytes) -> bool:
        """Exclusive create of a file in a version this publish has claimed.

        On S3 a create can land while its response is lost (reset, timeout); the client's
        retry then meets its own object and gets 412. Inside a claimed version nobody else
        writes, so an existing file with exactly our bytes is our own earlier attempt.
        """
        if self.storage.write_bytes(relative, data, exclusive=True):
            return True
        try:
            return self.storage.read_bytes(relative) == data
        except FileNotFoundError:
            return False

    def _write_manifest(self, folder: str, manifest: Manifest) -> None:
        if not self._create_in_claimed(f"{folder}/{MANIFEST}", manifest.to_json().encode()):
            raise RegistryError(f"{self._uri(folder, MANIFEST)} already exists")

    def promote(self, name: str, version: int) -> Manifest:
        """Point ``latest`` at ``name@version``, in either direction: the way to promote a
        version the gate held back, or to roll back (``ser models promote``).

        Raises:
            ModelNotFoundError: no such complete version.
            RegistryError: the alias cannot be written.
        """
        manifest = self.show(name, version)
        try:
            self._update_latest(name, version, manifest, force=True)
        except (OSError, StorageError, PermissionError, BotoCoreError) as error:
            raise RegistryError(
                f"registry {redact(self.url)} cannot be written ({type(error).__name__}: "
                f"{redact(str(error), self.settings)}); check the URL, bucket and credentials"
            ) from None
        return manifest

    def _update_latest(self, name: str, version: int, manifest: Manifest, *,
                       force: bool = False) -> bool:
        """Point ``latest`` at ``version`` unless it already points at a newer one (with
        ``force``: whatever it points at)."""
        alias = f"{self._dir(name)}/{LATEST}"
        manifest_bytes = self.storage.read_bytes(f"{self._dir(name, version)}/{MANIFEST}")
        record = json.dumps({"name": name, "version": version,
                             "manifest": f"{version}/{MANIFEST}",
                             "manifest_sha256": sha256_bytes(manifest_bytes),
                             "updated_at": datetime.now(timezone.utc).isoformat()},
                            indent=2).encode()
        for attempt in range(50):
            current, token = self.storage.read_versioned(alias)
            if current is not None and not force and \
                    json.loads(current).get("version", 0) >= version:
                return False
            if self.storage.replace_if_match(alias, record, token=token):
                return True
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise RegistryError(f"could not update {self._uri(self._dir(name), LATEST)}: "
                            "50 conflicting writers; publish again")

    def record_db(self, manifest: Manifest) -> str:
        """Insert into the DuckDB ``models`` table; returns the database path (or why not)."""
        try:
            from ser_pipeline.db import upsert_model
        except ImportError:
            message = ("DuckDB models table not updated: ser_pipeline.db.upsert_model is not "
                       "available in this installation")
            print(f"notice: {message}", file=sys.stderr)
            return f"skipped: {message}"
        upsert_model(self.settings.db, manifest.model_dump(mode="json", by_alias=True))
        return self.settings.db



def publish_gated(lake: Lake, export: ExportResult | str | Path, *, name: str,
                  registry: Registry, version: int | None = None,
                  gate_corpora: Sequence[str] | None = None, gate_split: str = "dev",
                  allow_regression: bool = False, record_db: bool = True,
                  robustness: bool = False, settings: Settings | None = None) -> Manifest:
    """Publish an export behind the no-regression gate: compare it with ``latest`` of
    ``name`` on the gate corpora's split (default: the run's training corpora, ``dev``)
    and move ``latest`` only when it is not significantly worse, or with
    ``allow_regression`` (:mod:`ser_pipeline.registry.gate`). A held-back candidate is
    still published, as a version ``latest`` does not point at. With ``robustness`` the
    robustness suite runs on the served file too
    (:func:`ser_pipeline.robustness_stage.publish_with_robustness`, which leaves the
    DuckDB record to the caller)."""
    from ser_pipeline.registry.gate import gate_candidate

    if not isinstance(export, ExportResult):
        export = load_export(export)
    gate = gate_candidate(lake, export, registry=registry, name=name, corpora=gate_corpora,
                          split=gate_split, allow_regression=allow_regression,
                          settings=settings or registry.settings)
    if robustness:
        from ser_pipeline.robustness_stage import publish_with_robustness

        return publish_with_robustness(registry, export, lake, name=name, version=version,
                                       gate=gate)
    return registry.publish(export, name=name, version=version, record_db=record_db,
                            gate=gate)


def publish_run(
    lake_url: str | None,
    run_id: str,
    *,
    name: str,
    registry: str | None = None,
    version: int | None = None,
    settings: Settings | None = None,
    out_dir: str | Path | None = None,
    calibration_clips: int = 32,
    record_db: bool = True,
    robustness: bool = False,
    gate_corpora: Sequence[str] | None = None,
    gate_split: str = "dev",
    allow_regression: bool = False,
) -> dict[str, Any]:
    """Export a run (fp32 + int8, parity checked) and publish it behind the no-regression
    gate (:func:`publish_gated`): the whole ``ser publish``.

    Parity runs before anything touches the registry; a :class:`ParityError` leaves it
    unchanged. With ``robustness``, the robustness suite runs on the file to be served
    (the run's dev clips against its teacher) before the publish, its results go into the
    manifest and the model card, and its rows into the lake's ``robustness`` table under
    ``name@version``. Returns :func:`publish_summary` of the manifest.
    """
    from ser_pipeline.export import export_run
    from ser_pipeline.lake import Lake

    settings = settings or get_settings()
    safe_name(name, what="model name")
    target = Registry(registry, settings=settings)  # fail on a bad URL before exporting
    lake = Lake.open(lake_url, settings=settings)
    with tempfile.TemporaryDirectory(prefix="ser-export-") as tmp:
        export = export_run(lake, run_id, out_dir=out_dir or tmp,
                            calibration_clips=calibration_clips)
        manifest = publish_gated(lake, export, name=name, registry=target, version=version,
                                 gate_corpora=gate_corpora, gate_split=gate_split,
                                 allow_regression=allow_regression, record_db=False,
                                 robustness=robustness, settings=settings)
    return publish_summary(manifest, db=target.record_db(manifest) if record_db else None)


def publish_summary(manifest: Manifest, *, db: str | None = None) -> dict[str, Any]:
    """The few manifest fields a person wants to see after a publish."""
    int8 = manifest.files.get(INT8_FILE)
    perf = manifest.performance
    return {
        "uri": manifest.uri, "name": manifest.name, "version": manifest.version,
        "run_id": manifest.run_id, "student": manifest.student,
        "fp32_bytes": manifest.files[FP32_FILE].bytes,
        "int8_bytes": int8.bytes if int8 else None,
        "quantization": manifest.int8.recipe.name if int8 and manifest.int8.recipe else None,
        "int8_withheld": manifest.int8.reason if manifest.int8.withheld else None,
        "parity_int8_vs_fp32": manifest.parity.int8_vs_fp32,
        "int8_latency_ms": perf.int8.latency_ms if perf and perf.int8 else None,
        "serves": manifest.serving.default_file, "serving_reason": manifest.serving.reason,
        "license": manifest.license.id, "warnings": manifest.warnings, "db": db,
        "robustness": [
            f"{sum(c.passed for c in r.perturbations)} of {len(r.perturbations)} "
            f"perturbations pass ser-tests ({r.corpus} {r.split} vs {r.reference}, "
            f"{r.n_clips} clips)" for r in manifest.robustness],
        "latest": manifest.gate is None or manifest.gate.promoted,
        "gate": manifest.gate.reason if manifest.gate is not None else None,
    }
