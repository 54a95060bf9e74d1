"""sha256 in one place: file and byte digests, and the canonical hash of a JSON section.

``audio_id`` (the sha256 of a source file's bytes), model file checksums in manifests and
teacher weight hashes are all plain sha256 hex digests; :func:`canonical_hash` defines the
``manifest_hash`` that ONNX metadata carries.

Examples:
    >>> sha256_bytes(b"abc")[:16]
    'ba7816bf8f01cfea'
    >>> canonical_hash({"b": 1, "a": [1, 2]}) == canonical_hash({"a": [1, 2], "b": 1})
    True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a local file, read in blocks (flat memory for large weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_hash(section: Any) -> str:
    """sha256 of ``section`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode())
