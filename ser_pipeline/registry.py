"""The model registry: versioned, immutable model folders on a local dir or S3.

Layout (root = ``--registry`` / ``$SER_REGISTRY``)::

    models/<name>/<version>/model.onnx        fp32, written first (its exclusive create
                                             claims the version number)
    models/<name>/<version>/model.int8.onnx   int8 (absent when int8 failed parity)
    models/<name>/<version>/model.yaml        audonnx description (audonnx.load(folder))
    models/<name>/<version>/manifest.json     written LAST: a version exists iff it has one
    models/<name>/latest.json                 alias -> newest complete version

Versions are integers 1, 2, ... and are never overwritten: every file is created with an
exclusive create (``If-None-Match: *`` on S3). A publish that dies before its manifest
leaves a folder without ``manifest.json``: ``list``/``show``/``resolve`` ignore it, the
alias never points at it, and its number is not reused.

``latest.json`` only moves forward: it is updated by compare-and-swap (``If-Match`` on
the ETag on S3, an ``flock`` locally, a lease-holding lock object on S3 servers without
``If-Match``) and only if the published version is newer than the one it points at. Two
concurrent publishes therefore get two complete versions, and the alias ends on the newer.

Model URIs: ``registry://name``, ``registry://name@3``, ``registry://name@latest``, with an
optional ``#fp32`` or ``#int8`` suffix (default int8: the artefact the paper ships), or a
local path (an ``.onnx`` file or a version folder). A version whose int8 failed parity is
published with ``model.onnx`` only; its manifest's ``int8`` section says why, and
resolving it serves fp32 with a one-line notice.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

try:  # errors botocore raises without translating them to OSError (connection, timeout)
    from botocore.exceptions import BotoCoreError
except ImportError:  # pragma: no cover - s3fs (and botocore) are dependencies
    BotoCoreError = OSError  # type: ignore[misc,assignment]

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.export import FP32_FILE, INPUT_NAME, INT8_FILE, OUTPUT_NAME, load_export
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.storage import Storage, StorageError, safe_name

MANIFEST = "manifest.json"
YAML_FILE = "model.yaml"
LATEST = "latest.json"
MANIFEST_SCHEMA = "ser-pipeline/model-manifest/1"
_PACKAGES = ("ser-pipeline", "torch", "onnx", "onnxruntime", "onnxscript", "numpy",
             "audmetric", "s3fs")


class RegistryError(RuntimeError):
    """A registry operation failed; the message says what and how to fix it."""


class ModelNotFoundError(RegistryError):
    """No such model name or version in the registry."""


class VersionExistsError(RegistryError):
    """The requested version is already taken (versions are never overwritten)."""


class IntegrityError(RegistryError):
    """A file's sha256 does not match its manifest; the message names the file."""


def redact(text: str, settings: Settings | None = None) -> str:
    """Remove credentials from a message: ``user:pass@`` in URLs and known secret values."""
    text = re.sub(r"(://)[^/@\s]+@", r"\1***@", str(text))
    if settings is not None:
        for secret in (settings.aws_secret_access_key, settings.aws_session_token,
                       settings.aws_access_key_id):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
    return text


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name"``, ``"name@3"`` or ``"name@latest"`` -> ``(name, version | None)``."""
    name, _, version = ref.partition("@")
    safe_name(name, what="model name")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"invalid version {version!r} in {ref!r}: use a number >= 1 or 'latest'")
    return name, int(version)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in _PACKAGES:
        try:
            out[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            out[package] = None
    return out


def audonnx_yaml(model_file: str = FP32_FILE) -> str:
    """``model.yaml`` in audobject's format, so ``audonnx.load(folder)`` finds the model."""
    labels = "\n".join(f"    - {label}" for label in LABELS)
    return (f"$audonnx.core.model.Model==1.0.1:\n  path: {model_file}\n  labels:\n"
            f"    {OUTPUT_NAME}:\n{labels}\n  transform: null\n")


class Registry:
    """Publish, list, show and fetch models.

    Args:
        url: Registry root (local path or ``s3://bucket/prefix``); default
            ``settings.registry``.
        settings: Settings (credentials, endpoint, DuckDB path); default from env.

    Examples:
        >>> import tempfile
        >>> Registry(tempfile.mkdtemp()).list_models()
        []
    """

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.registry
        try:
            self.storage = Storage(self.url, settings=self.settings)
        except (StorageError, ValueError, ImportError) as error:
            raise RegistryError(f"cannot open registry {redact(self.url)}: "
                                f"{redact(str(error), self.settings)}") from None

    def __repr__(self) -> str:
        return f"Registry({redact(self.url)!r})"

    # -- paths -----------------------------------------------------------------------------
    @staticmethod
    def _dir(name: str, version: int | None = None) -> str:
        base = f"models/{safe_name(name, what='model name')}"
        return f"{base}/{version}" if version is not None else base

    def _refresh(self, relative: str) -> None:
        self.storage.refresh(relative)

    def _version_dirs(self, name: str) -> list[int]:
        self._refresh(self._dir(name))
        return sorted(int(v) for v in self.storage.list_dirs(self._dir(name)) if v.isdigit())

    def versions(self, name: str) -> list[int]:
        """Complete versions (those with a manifest), ascending."""
        return [v for v in self._version_dirs(name)
                if self.storage.exists(f"{self._dir(name, v)}/{MANIFEST}")]

    def names(self) -> list[str]:
        self._refresh("models")
        return self.storage.list_dirs("models")

    # -- publish ---------------------------------------------------------------------------
    def publish(
        self,
        export: dict | str | Path,
        *,
        name: str,
        version: int | None = None,
        record_db: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> dict:
        """Publish an export as a new immutable version and move ``latest`` to it.

        Args:
            export: The dict :func:`ser_pipeline.export.export_run` returned, or its
                output folder (with ``export.json``).
            name: Model name (letters, digits, ``.``, ``_``, ``-``).
            version: Explicit version number; default the next free one.
            record_db: Also insert the manifest into the DuckDB ``models`` table.
            extra: More manifest fields (e.g. a description).

        Returns:
            The manifest as written.

        Raises:
            VersionExistsError: ``version`` is taken (the registry is left unchanged).
            RegistryError: parity did not pass, the export files changed since export, or
                the registry cannot be written.
        """
        safe_name(name, what="model name")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise ValueError(f"version must be an integer >= 1, got {version!r}")
        if not isinstance(export, dict):
            export = load_export(export)
        parity = export.get("parity") or {}
        if not parity.get("passed"):
            raise RegistryError(
                f"refusing to publish run {export.get('run_id')}: parity did not pass "
                f"(torch_vs_fp32={parity.get('torch_vs_fp32')}, "
                f"int8_vs_fp32={parity.get('int8_vs_fp32')})")
        payloads = {}
        for file_name in (FP32_FILE, INT8_FILE):
            info = export["files"].get(file_name)
            if info is None:
                if file_name == INT8_FILE and (export.get("int8") or {}).get("withheld"):
                    continue  # published fp32 only; the manifest says why
                raise RegistryError(f"export of run {export.get('run_id')} has no {file_name}"
                                    ": export again")
            data = Path(info["path"]).read_bytes()
            if sha256_bytes(data) != info["sha256"]:
                raise IntegrityError(f"{info['path']} changed since it was exported "
                                     "(sha256 differs): export again")
            payloads[file_name] = data
        payloads[YAML_FILE] = audonnx_yaml().encode()

        try:
            version = self._claim(name, version, payloads[FP32_FILE])
            folder = self._dir(name, version)
            for file_name in (n for n in (INT8_FILE, YAML_FILE) if n in payloads):
                if not self._create_in_claimed(f"{folder}/{file_name}", payloads[file_name]):
                    raise RegistryError(f"{self._uri(folder, file_name)} appeared during the "
                                        "publish: another writer is using this version")
            manifest = self._manifest(export, name=name, version=version, payloads=payloads,
                                      extra=extra)
            from ser_pipeline.model_card import CARD_FILE, model_card  # README.md (HF-style)

            self._create_in_claimed(f"{folder}/{CARD_FILE}", model_card(manifest).encode())
            self._write_manifest(folder, manifest)
            self._update_latest(name, version, manifest)
        except RegistryError:
            raise
        except (OSError, StorageError, PermissionError, BotoCoreError) as error:
            raise RegistryError(
                f"registry {redact(self.url)} cannot be written ({type(error).__name__}: "
                f"{redact(str(error), self.settings)}); check the URL, bucket and credentials"
            ) from None
        if record_db:
            manifest["db"] = self._record_db(manifest)
        return manifest

    def _uri(self, folder: str, file_name: str) -> str:
        return redact(self.storage.uri(f"{folder}/{file_name}"))

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

    def _write_manifest(self, folder: str, manifest: dict) -> None:
        data = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        if not self._create_in_claimed(f"{folder}/{MANIFEST}", data):
            raise RegistryError(f"{self._uri(folder, MANIFEST)} already exists")

    def _manifest(self, export: dict, *, name: str, version: int,
                  payloads: dict[str, bytes], extra: dict | None) -> dict:
        provenance = export.get("provenance") or {}
        license_info = export.get("license") or {"id": "unknown", "restricts_use": None,
                                                 "warning": "licence unknown"}
        warnings = [w for w in [license_info.get("warning")] if w]
        metadata = export.get("metadata") or {}
        files = {
            file_name: {"sha256": sha256_bytes(data), "bytes": len(data)}
            for file_name, data in payloads.items()
        }
        files[FP32_FILE]["precision"] = "fp32"
        quantization = export.get("quantization") or {}
        if INT8_FILE in files:
            files[INT8_FILE].update(precision="int8", quantization=quantization.get("chosen"))
        default_file = INT8_FILE if INT8_FILE in files else FP32_FILE
        int8_state = export.get("int8") or {"withheld": INT8_FILE not in files}
        if int8_state.get("withheld"):
            warnings.append(f"int8 withheld: {int8_state.get('reason')}; fp32 is served")
        parity = {k: v for k, v in (export.get("parity") or {}).items() if k != "audio_ids"}
        performance = export.get("performance") or {}
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "name": name,
            "version": version,
            "uri": f"registry://{name}@{version}",
            "published_at": datetime.now(timezone.utc).isoformat(),
            "files": files,
            "default_file": default_file,
            "int8": {**int8_state, "recipe": quantization.get("recipe"),
                     "selection": quantization.get("selection"),
                     "fp32_latency_ms": quantization.get("fp32_latency_ms"),
                     "int8_latency_ms": quantization.get("int8_latency_ms"),
                     "parity_machine": quantization.get("machine")},
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", "samples"],
                      "sample_rate": SAMPLE_RATE,
                      "min_samples": int(metadata.get("min_samples", 0)) or None,
                      "normalisation": "per utterance, inside the graph"},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", 3],
                       "labels": list(LABELS)},
            "labels": list(LABELS),
            "student": export.get("student"),
            "run_id": export.get("run_id"),
            "teacher_id": provenance.get("teacher_id"),
            "params": export.get("params"),
            "size_bytes": files[default_file]["bytes"],
            "ccc": export.get("ccc") or [],
            "parity": parity,
            "teacher": {"id": provenance.get("teacher_id"),
                        "weights_sha256": provenance.get("teacher_sha256")},
            "training_run": {"run_id": export.get("run_id"), "student": export.get("student"),
                             "params": export.get("params"), "lake": redact(
                                 str(export.get("lake"))), **(export.get("run") or {})},
            "lake_snapshot": provenance.get("lake_snapshot"),
            "git_sha": provenance.get("git_sha"),
            "provenance": provenance,
            "manifest_hash": export.get("manifest_hash"),
            "performance": {
                key: performance.get(key) for key in ("gflop_per_clip", "cpu_peak",
                                                      "int8_speedup_vs_fp32")
            } | {p: {k: (performance.get(p) or {}).get(k) for k in (
                "latency_ms", "peak_rss_increase_mb", "gflops_achieved",
                "fraction_of_fp32_peak")} for p in ("fp32", "int8") if p in performance}
            if performance else {},
            "packages": package_versions(),
            "license": license_info,
            "warnings": warnings,
        }
        if extra:
            manifest.update({k: v for k, v in extra.items() if k not in manifest})
        return manifest

    def _update_latest(self, name: str, version: int, manifest: dict) -> bool:
        """Point ``latest`` at ``version`` unless it already points at a newer one."""
        alias = f"{self._dir(name)}/{LATEST}"
        manifest_bytes = self.storage.read_bytes(f"{self._dir(name, version)}/{MANIFEST}")
        record = json.dumps({"name": name, "version": version,
                             "manifest": f"{version}/{MANIFEST}",
                             "manifest_sha256": sha256_bytes(manifest_bytes),
                             "updated_at": datetime.now(timezone.utc).isoformat()},
                            indent=2).encode()
        for attempt in range(50):
            current, token = self.storage.read_versioned(alias)
            if current is not None and json.loads(current).get("version", 0) >= version:
                return False
            if self.storage.replace_if_match(alias, record, token=token):
                return True
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise RegistryError(f"could not update {self._uri(self._dir(name), LATEST)}: "
                            "50 conflicting writers; publish again")

    def _record_db(self, manifest: dict) -> str:
        """Insert into the DuckDB ``models`` table (ser_pipeline.db), if that module exists."""
        try:
            from ser_pipeline.db import upsert_model
        except ImportError:
            message = ("DuckDB models table not updated: ser_pipeline.db.upsert_model is not "
                       "available in this installation")
            print(f"notice: {message}", file=sys.stderr)
            return f"skipped: {message}"
        upsert_model(self.settings.db, manifest)
        return self.settings.db

    # -- read ------------------------------------------------------------------------------
    def latest_version(self, name: str) -> int:
        """The version ``latest`` points at (or the newest complete one, if no alias)."""
        raw, _ = self.storage.read_versioned(f"{self._dir(name)}/{LATEST}")
        if raw is not None:
            return int(json.loads(raw)["version"])
        versions = self.versions(name)
        if not versions:
            raise self._not_found(name)
        return versions[-1]

    def _not_found(self, name: str, version: int | None = None) -> ModelNotFoundError:
        known = ", ".join(self.names()) or "none"
        what = f"{name}@{version}" if version is not None else name
        return ModelNotFoundError(
            f"model {what} not found in registry {redact(self.url)} (models: {known}); "
            "see 'ser models list'")

    def show(self, name: str, version: int | None = None) -> dict:
        """The manifest of ``name@version`` (``None``: latest)."""
        safe_name(name, what="model name")
        if version is None:
            version = self.latest_version(name)
        try:
            return json.loads(self.storage.read_bytes(f"{self._dir(name, version)}/{MANIFEST}"))
        except FileNotFoundError:
            raise self._not_found(name, version) from None

    def list_models(self, name: str | None = None) -> list[dict]:
        """One row per complete version: name, version, latest, student, sizes, CCC."""
        names = [safe_name(name, what="model name")] if name else self.names()
        if name and name not in self.names():
            raise self._not_found(name)
        rows = []
        for model_name in names:
            versions = self.versions(model_name)
            if not versions:
                continue
            latest = self.latest_version(model_name)
            for version in versions:
                manifest = self.show(model_name, version)
                ccc = next((c for c in manifest.get("ccc", []) if c.get("split") == "dev"), None)
                rows.append({
                    "name": model_name, "version": version, "latest": version == latest,
                    "student": manifest["training_run"].get("student"),
                    "run_id": manifest["training_run"].get("run_id"),
                    "int8_bytes": (manifest["files"].get(INT8_FILE) or {}).get("bytes"),
                    "fp32_bytes": manifest["files"][FP32_FILE]["bytes"],
                    "dev_ccc_mean": ccc.get("mean") if ccc else None,
                    "license": manifest.get("license", {}).get("id"),
                    "published_at": manifest.get("published_at"),
                })
        return rows

    # -- fetch -----------------------------------------------------------------------------
    def fetch(self, name: str, version: int | None = None, *,
              cache_dir: str | Path | None = None) -> tuple[Path, dict]:
        """Download a version into the local cache, verifying every sha256.

        A cached file whose hash no longer matches is fetched again; a downloaded file
        whose hash does not match its manifest raises :class:`IntegrityError` naming it.
        Returns ``(local folder, manifest)``.
        """
        via_alias = version is None
        if via_alias:
            raw, _ = self.storage.read_versioned(f"{self._dir(name)}/{LATEST}")
            alias = json.loads(raw) if raw is not None else None
            version = int(alias["version"]) if alias else self.latest_version(name)
        else:
            alias = None
        folder = self._dir(name, version)
        try:
            manifest_bytes = self.storage.read_bytes(f"{folder}/{MANIFEST}")
        except FileNotFoundError:
            raise self._not_found(name, version) from None
        if alias and alias.get("manifest_sha256") and \
                sha256_bytes(manifest_bytes) != alias["manifest_sha256"]:
            raise IntegrityError(f"{self._uri(folder, MANIFEST)}: sha256 differs from the one "
                                 "recorded in latest.json (corrupted or tampered manifest)")
        manifest = json.loads(manifest_bytes)
        cache = Storage(str(self._cache_root(cache_dir) / folder), settings=self.settings)
        for file_name, info in manifest["files"].items():
            if cache.exists(file_name) and sha256_bytes(cache.read_bytes(file_name)) == \
                    info["sha256"]:
                continue
            data = self.storage.read_bytes(f"{folder}/{file_name}")
            if sha256_bytes(data) != info["sha256"] or len(data) != info["bytes"]:
                raise IntegrityError(
                    f"sha256 mismatch for {self._uri(folder, file_name)}: the manifest says "
                    f"{info['sha256'][:16]}..., the file has {sha256_bytes(data)[:16]}... "
                    "(corrupted download or tampered registry); not using it")
            cache.write_bytes(file_name, data)
        cache.write_bytes(MANIFEST, manifest_bytes)
        return Path(cache.root), manifest

    def _cache_root(self, cache_dir: str | Path | None) -> Path:
        base = Path(cache_dir or getattr(self.settings, "cache_dir", None)
                    or "~/.cache/ser-pipeline").expanduser()
        # One sub-folder per registry URL, so two registries' "foo@1" never collide.
        return base / "registry" / sha256_bytes(redact(self.url).encode())[:16]


def resolve_model(
    uri: str,
    *,
    settings: Settings | None = None,
    registry: str | None = None,
    cache_dir: str | Path | None = None,
    precision: str | None = None,
) -> tuple[Path, str | None]:
    """A local ``.onnx`` path for ``registry://name[@version|latest][#fp32|#int8]`` or a path,
    and a one-line notice when the file served is not the one asked for.

    Registry models are downloaded to the cache (``cache_dir``, else
    ``~/.cache/ser-pipeline``) and every file's sha256 is checked against the manifest.
    The int8 model is the default; ``#fp32`` (or ``precision="fp32"``) picks fp32. A model
    published fp32 only (its int8 failed parity) serves fp32, and the notice says so.
    A local folder with a ``manifest.json`` is verified the same way.

    Raises:
        ModelNotFoundError: unknown name or version.
        IntegrityError: a file does not match its manifest (the message names it).
    """
    settings = settings or get_settings()
    target, _, fragment = uri.partition("#")
    precision = precision or fragment or "int8"
    if precision not in ("int8", "fp32"):
        raise ValueError(f"unknown precision {precision!r} in {uri!r}: use #int8 or #fp32")
    file_name = INT8_FILE if precision == "int8" else FP32_FILE
    if target.startswith("registry://"):
        name, version = parse_ref(target[len("registry://"):])
        folder, manifest = Registry(registry, settings=settings).fetch(name, version,
                                                                       cache_dir=cache_dir)
    elif "://" in target:
        raise ValueError(f"unsupported model URI {uri!r}: use registry://NAME[@VERSION] or a "
                         "path to an .onnx file or a model folder")
    else:
        folder, manifest = Path(target).expanduser(), None
        if folder.is_file():
            return folder, None
        if not folder.is_dir():
            raise ModelNotFoundError(f"model {uri!r} not found: no such file or model folder")
        if (folder / MANIFEST).is_file():
            manifest = json.loads((folder / MANIFEST).read_text())
            for member, info in manifest["files"].items():
                if sha256_bytes((folder / member).read_bytes()) != info["sha256"]:
                    raise IntegrityError(f"sha256 mismatch for {folder / member}: it does "
                                         "not match manifest.json")
    if (folder / file_name).is_file():
        return folder / file_name, None
    if (folder / FP32_FILE).is_file():
        why = ((manifest or {}).get("int8") or {}).get("reason") or "no int8 file"
        return folder / FP32_FILE, f"{target} has no int8 model ({why}); using fp32"
    raise ModelNotFoundError(f"model {uri!r} not found: {folder} holds no {file_name}")


def resolve_model_uri(uri: str, **options: Any) -> Path:
    """The path half of :func:`resolve_model` (same arguments)."""
    return resolve_model(uri, **options)[0]


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
) -> dict:
    """Export a run (fp32 + int8, parity checked) and publish it: the whole ``ser publish``.

    Parity runs before anything touches the registry; a :class:`ParityError` leaves it
    unchanged. Returns a summary with the manifest's key fields.
    """
    import tempfile

    from ser_pipeline.export import export_run
    from ser_pipeline.lake import Lake

    settings = settings or get_settings()
    safe_name(name, what="model name")
    target = Registry(registry, settings=settings)  # fail on a bad URL before exporting
    lake = Lake.open(lake_url, settings=settings)
    with tempfile.TemporaryDirectory(prefix="ser-export-") as tmp:
        export = export_run(lake, run_id, out_dir=out_dir or tmp,
                            calibration_clips=calibration_clips)
        manifest = target.publish(export, name=name, version=version, record_db=record_db)
    return publish_summary(manifest)


def publish_summary(manifest: dict) -> dict:
    """The few manifest fields a person wants to see after a publish."""
    perf = manifest.get("performance") or {}
    return {
        "uri": manifest["uri"], "name": manifest["name"], "version": manifest["version"],
        "run_id": manifest.get("run_id"), "student": manifest.get("student"),
        "fp32_bytes": manifest["files"][FP32_FILE]["bytes"],
        "int8_bytes": (manifest["files"].get(INT8_FILE) or {}).get("bytes"),
        "quantization": (manifest["files"].get(INT8_FILE) or {}).get("quantization"),
        "int8_withheld": (manifest.get("int8") or {}).get("reason")
        if (manifest.get("int8") or {}).get("withheld") else None,
        "parity_int8_vs_fp32": manifest["parity"].get("int8_vs_fp32"),
        "int8_latency_ms": (perf.get("int8") or {}).get("latency_ms"),
        "license": manifest["license"].get("id"),
        "warnings": manifest.get("warnings") or [],
        "db": manifest.get("db"),
    }
