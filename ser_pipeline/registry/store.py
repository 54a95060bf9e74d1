"""The registry's layout and its read side: versioned, immutable model folders on a local
dir or S3 (the write side, publishing, is :mod:`ser_pipeline.registry.publish`).

Layout (root = ``--registry`` / ``$SER_REGISTRY``)::

    models/<name>/<version>/model.onnx        fp32, written first (its exclusive create
                                             claims the version number)
    models/<name>/<version>/model.int8.onnx   int8 (absent when int8 failed parity)
    models/<name>/<version>/model.yaml        audonnx description (audonnx.load(folder))
    models/<name>/<version>/README.md         the model card
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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.export import FP32_FILE, INT8_FILE
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.registry.errors import IntegrityError, ModelNotFoundError, RegistryError, redact
from ser_pipeline.registry.manifest import MANIFEST, Manifest, read_manifest
from ser_pipeline.storage import Storage, StorageError, safe_name

YAML_FILE = "model.yaml"
LATEST = "latest.json"


class RegistryStore:
    """List, show and fetch published models (publishing: :class:`Registry`).

    Args:
        url: Registry root (local path or ``s3://bucket/prefix``); default
            ``settings.registry``.
        settings: Settings (credentials, endpoint, DuckDB path); default from env.

    Examples:
        >>> import tempfile
        >>> RegistryStore(tempfile.mkdtemp()).list_models()
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
        return f"{type(self).__name__}({redact(self.url)!r})"

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

    def _uri(self, folder: str, file_name: str) -> str:
        return redact(self.storage.uri(f"{folder}/{file_name}"))

    def versions(self, name: str) -> list[int]:
        """Complete versions (those with a manifest), ascending."""
        return [v for v in self._version_dirs(name)
                if self.storage.exists(f"{self._dir(name, v)}/{MANIFEST}")]

    def names(self) -> list[str]:
        self._refresh("models")
        return self.storage.list_dirs("models")

    # -- read ------------------------------------------------------------------------------
    def _alias(self, name: str) -> dict[str, Any] | None:
        raw, _ = self.storage.read_versioned(f"{self._dir(name)}/{LATEST}")
        return json.loads(raw) if raw is not None else None

    def latest_version(self, name: str) -> int:
        """The version ``latest`` points at (or the newest complete one, if no alias)."""
        alias = self._alias(name)
        if alias is not None:
            return int(alias["version"])
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

    def show(self, name: str, version: int | None = None) -> Manifest:
        """The manifest of ``name@version`` (``None``: latest)."""
        safe_name(name, what="model name")
        if version is None:
            version = self.latest_version(name)
        try:
            return read_manifest(self.storage.read_bytes(f"{self._dir(name, version)}/"
                                                         f"{MANIFEST}"))
        except FileNotFoundError:
            raise self._not_found(name, version) from None

    def list_models(self, name: str | None = None) -> list[dict[str, Any]]:
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
            rows.extend(version_row(self.show(model_name, version), latest=version == latest)
                        for version in versions)
        return rows

    # -- fetch -----------------------------------------------------------------------------
    def fetch(self, name: str, version: int | None = None, *,
              cache_dir: str | Path | None = None) -> tuple[Path, Manifest]:
        """Download a version into the local cache, verifying every sha256.

        A cached file whose hash no longer matches is fetched again; a downloaded file
        whose hash does not match its manifest raises :class:`IntegrityError` naming it.
        Returns ``(local folder, manifest)``.
        """
        alias = self._alias(name) if version is None else None
        if version is None:
            version = int(alias["version"]) if alias else self.latest_version(name)
        folder = self._dir(name, version)
        try:
            manifest_bytes = self.storage.read_bytes(f"{folder}/{MANIFEST}")
        except FileNotFoundError:
            raise self._not_found(name, version) from None
        if alias and alias.get("manifest_sha256") and \
                sha256_bytes(manifest_bytes) != alias["manifest_sha256"]:
            raise IntegrityError(f"{self._uri(folder, MANIFEST)}: sha256 differs from the one "
                                 "recorded in latest.json (corrupted or tampered manifest)")
        manifest = read_manifest(manifest_bytes)
        cache = Storage(str(self._cache_root(cache_dir) / folder), settings=self.settings)
        for file_name, info in manifest.files.items():
            if cache.exists(file_name) and sha256_bytes(cache.read_bytes(file_name)) == \
                    info.sha256:
                continue
            data = self.storage.read_bytes(f"{folder}/{file_name}")
            if sha256_bytes(data) != info.sha256 or len(data) != info.bytes:
                raise IntegrityError(
                    f"sha256 mismatch for {self._uri(folder, file_name)}: the manifest says "
                    f"{info.sha256[:16]}..., the file has {sha256_bytes(data)[:16]}... "
                    "(corrupted download or tampered registry); not using it")
            cache.write_bytes(file_name, data)
        cache.write_bytes(MANIFEST, manifest_bytes)
        return Path(cache.root), manifest

    def _cache_root(self, cache_dir: str | Path | None) -> Path:
        base = Path(cache_dir or getattr(self.settings, "cache_dir", None)
                    or "~/.cache/ser-pipeline").expanduser()
        # One sub-folder per registry URL, so two registries' "foo@1" never collide.
        return base / "registry" / sha256_bytes(redact(self.url).encode())[:16]


def version_row(manifest: Manifest, *, latest: bool) -> dict[str, Any]:
    """What ``ser models list`` shows of one version."""
    dev = next((c for c in manifest.ccc if c.split == "dev"), None)
    int8 = manifest.files.get(INT8_FILE)
    return {
        "name": manifest.name, "version": manifest.version, "latest": latest,
        "student": manifest.student, "run_id": manifest.run_id,
        "int8_bytes": int8.bytes if int8 else None,
        "fp32_bytes": manifest.files[FP32_FILE].bytes,
        "serves": manifest.serving.default_file,
        "dev_ccc_mean": dev.mean if dev else None, "license": manifest.license.id,
        "published_at": manifest.published_at,
        "gate_passed": manifest.gate.passed if manifest.gate is not None else None,
    }
