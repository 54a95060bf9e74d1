"""The model registry: versioned, immutable model folders on a local dir or S3.

- :mod:`~ser_pipeline.registry.store`: the layout and the read side
  (:class:`RegistryStore`: list, show, fetch with sha256 checks, the ``latest`` alias);
- :mod:`~ser_pipeline.registry.publish`: the write side (:class:`Registry`: a new
  immutable version, the alias moved by compare-and-swap) and ``ser publish``;
- :mod:`~ser_pipeline.registry.gate`: the no-regression gate (a candidate significantly
  worse than ``latest`` is published without moving ``latest``);
- :mod:`~ser_pipeline.registry.manifest`: the typed manifest and its schema versions;
- :mod:`~ser_pipeline.registry.serving`: the choice of the file served by default;
- :mod:`~ser_pipeline.registry.uri`: ``registry://name[@version][#fp32|#int8]`` to a file;
- :mod:`~ser_pipeline.registry.errors`: errors, and credentials kept out of messages.

A version whose int8 failed parity is published with ``model.onnx`` only; its manifest's
``int8`` section says why, and resolving it serves fp32 with a one-line notice.
"""

from ser_pipeline.registry.errors import (
    IntegrityError,
    ModelNotFoundError,
    RegistryError,
    VersionExistsError,
    redact,
)
from ser_pipeline.registry.manifest import (
    MANIFEST,
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_V1,
    GateRecord,
    Manifest,
    Serving,
    choose_serving,
    read_manifest,
)
from ser_pipeline.registry.publish import (
    Registry,
    audonnx_yaml,
    publish_gated,
    publish_run,
    publish_summary,
)
from ser_pipeline.registry.store import LATEST, YAML_FILE, RegistryStore
from ser_pipeline.registry.uri import (
    manifest_next_to,
    parse_ref,
    resolve_model,
    resolve_model_uri,
)

__all__ = [
    "LATEST", "MANIFEST", "MANIFEST_SCHEMA", "MANIFEST_SCHEMA_V1", "YAML_FILE",
    "GateRecord", "IntegrityError", "Manifest", "ModelNotFoundError", "Registry",
    "RegistryError",
    "RegistryStore",
    "Serving", "VersionExistsError", "audonnx_yaml", "choose_serving", "manifest_next_to",
    "parse_ref", "publish_gated", "publish_run", "publish_summary", "read_manifest", "redact",
    "resolve_model", "resolve_model_uri",
]
