"""Model URIs: ``registry://name[@version|latest][#fp32|#int8]`` or a local path, to a file.

Without ``#fp32``/``#int8`` the file served is the one the manifest chose at publish: the
faster of fp32 and int8 on the publishing machine (int8 for manifests that recorded no
latency pair, fp32 when int8 was withheld), and a one-line notice says which and why.
``#int8`` forces int8 (fp32, with a notice, where int8 was withheld); ``#fp32`` forces fp32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.export import FP32_FILE, INT8_FILE
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.registry.errors import IntegrityError, ModelNotFoundError
from ser_pipeline.registry.manifest import MANIFEST, Manifest, read_manifest
from ser_pipeline.storage import safe_name

PRECISIONS = {"int8": INT8_FILE, "fp32": FP32_FILE}


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name"``, ``"name@3"`` or ``"name@latest"`` -> ``(name, version | None)``.

    Examples:
        >>> parse_ref("ser-wav2small@3")
        ('ser-wav2small', 3)
        >>> parse_ref("ser-wav2small@latest")
        ('ser-wav2small', None)
    """
    name, _, version = ref.partition("@")
    safe_name(name, what="model name")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"invalid version {version!r} in {ref!r}: use a number >= 1 or 'latest'")
    return name, int(version)


def serving_notice(target: str, manifest: Manifest) -> str:
    """The one line ``ser predict`` prints when it serves the manifest's default file."""
    from ser_pipeline.cpu import cpu_info

    serving = manifest.serving
    precision = "int8" if serving.default_file == INT8_FILE else "fp32"
    other = "fp32" if precision == "int8" else "int8"
    line = f"{target}: serving {precision} ({serving.default_file}): {serving.reason}"
    here = cpu_info().kind
    if serving.measured_on is not None and serving.measured_on.kind != here:
        line += f"; this CPU is {here}"
    if other == "fp32" or INT8_FILE in manifest.files:
        line += f"; #{other} forces {other}"
    return line


def _pick(folder: Path, manifest: Manifest | None, requested: str | None,
          target: str) -> tuple[Path, str | None]:
    if requested is None and manifest is not None:
        path = folder / manifest.serving.default_file
        if not path.is_file():
            raise ModelNotFoundError(f"model {target!r}: {path} is missing")
        return path, serving_notice(target, manifest)
    file_name = PRECISIONS[requested or "int8"]  # a bare folder: int8 when it has one
    if (folder / file_name).is_file():
        return folder / file_name, None
    if (folder / FP32_FILE).is_file():
        why = (manifest.int8.reason if manifest is not None else None) or "no int8 file"
        return folder / FP32_FILE, f"{target} has no int8 model ({why}); using fp32"
    raise ModelNotFoundError(f"model {target!r} not found: {folder} holds no {file_name}")


def resolve_model(
    uri: str,
    *,
    settings: Settings | None = None,
    registry: str | None = None,
    cache_dir: str | Path | None = None,
    precision: str | None = None,
) -> tuple[Path, str | None]:
    """A local ``.onnx`` path for a model URI or path, and a one-line notice on the choice.

    Registry models are downloaded to the cache (``cache_dir``, else
    ``~/.cache/ser-pipeline``) and every file's sha256 is checked against the manifest;
    a local folder with a ``manifest.json`` is verified the same way. ``precision``
    (``"int8"``/``"fp32"``) does what a ``#int8``/``#fp32`` suffix does.

    Raises:
        ModelNotFoundError: unknown name or version.
        IntegrityError: a file does not match its manifest (the message names it).
        ValueError: an unknown precision or URI scheme.
    """
    from ser_pipeline.registry.store import RegistryStore

    settings = settings or get_settings()
    target, _, fragment = uri.partition("#")
    requested = precision or fragment or None
    if requested is not None and requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r} in {uri!r}: use #int8 or #fp32")
    manifest: Manifest | None = None
    if target.startswith("registry://"):
        name, version = parse_ref(target[len("registry://"):])
        folder, manifest = RegistryStore(registry, settings=settings).fetch(
            name, version, cache_dir=cache_dir)
    elif "://" in target:
        raise ValueError(f"unsupported model URI {uri!r}: use registry://NAME[@VERSION] or a "
                         "path to an .onnx file or a model folder")
    else:
        folder = Path(target).expanduser()
        if folder.is_file():
            return folder, None
        if not folder.is_dir():
            raise ModelNotFoundError(f"model {uri!r} not found: no such file or model folder")
        if (folder / MANIFEST).is_file():
            manifest = read_manifest((folder / MANIFEST).read_bytes())
            for member, info in manifest.files.items():
                if sha256_bytes((folder / member).read_bytes()) != info.sha256:
                    raise IntegrityError(f"sha256 mismatch for {folder / member}: it does "
                                         "not match manifest.json")
    return _pick(folder, manifest, requested, target)


def resolve_model_uri(uri: str, **options: Any) -> Path:
    """The path half of :func:`resolve_model` (same arguments)."""
    return resolve_model(uri, **options)[0]


def manifest_next_to(path: str | Path) -> Manifest | None:
    """The manifest in the folder of a model file, if there is one and it reads."""
    candidate = Path(path).parent / MANIFEST
    if not candidate.is_file():
        return None
    try:
        return read_manifest(candidate.read_bytes())
    except (OSError, ValueError, json.JSONDecodeError):
        return None  # a convenience: the model file itself is authoritative
