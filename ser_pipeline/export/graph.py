"""torch -> ONNX: the fp32 graph, its metadata, and the graph surgery quantisation needs.

The graph takes ``signal`` (float32 ``[batch, samples]``, 16 kHz, dynamic batch and length
of at least the students' ``MIN_SAMPLES``) and returns ``logits`` (``[batch, 3]``: arousal,
dominance, valence), the audEERING teacher's naming. The log-mel front end is a conv DFT
inside the graph, so the model eats raw waveforms and no STFT op has to export.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ser_pipeline.export.errors import ExportError
from ser_pipeline.export.result import Provenance
from ser_pipeline.onnx_model import INPUT_NAME, OUTPUT_NAME
from ser_pipeline.schemas import LABELS, SAMPLE_RATE

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
__all__ = ["FP32_FILE", "INPUT_NAME", "INT8_FILE", "OUTPUT_NAME", "export_fp32",
           "onnx_metadata"]


def onnx_metadata(provenance: Provenance, *, manifest_hash: str) -> dict[str, str]:
    """The ``metadata_props`` both files of a run carry (``export_model`` adds
    ``min_samples`` and, per file, ``quantization``): enough for a file found on disk to
    say what it is and which manifest it has.

    Examples:
        >>> from ser_pipeline.export.result import Provenance
        >>> p = Provenance(run_id="r1", student="wav2small", student_options={},
        ...                teacher_id="t", teacher_sha256=None, lake_snapshot=None,
        ...                git_sha=None, checkpoint="c", checkpoint_sha256="0" * 64,
        ...                labels=["arousal", "dominance", "valence"], sample_rate=16000,
        ...                input="signal", output="logits")
        >>> onnx_metadata(p, manifest_hash="ab")["student"]
        'wav2small'
    """
    return {
        "labels": json.dumps(list(LABELS)), "sample_rate": str(SAMPLE_RATE),
        "teacher_id": str(provenance.teacher_id),
        "teacher_sha256": str(provenance.teacher_sha256), "student": provenance.student,
        "run_id": provenance.run_id, "manifest_hash": manifest_hash,
        "manifest_hash_of": "sha256 of canonical JSON of manifest.provenance",
    }


def export_fp32(model: Any, path: str | Path, *, metadata: dict[str, str],
                min_samples: int | None = None) -> None:
    """Export ``model`` ([batch, samples] -> [batch, 3]) to a single-file ONNX graph.

    ``min_samples`` (default the students' ``MIN_SAMPLES``) is the shortest length the
    dynamic time axis is exported for.
    """
    import onnx
    import torch

    if min_samples is None:
        from ser_pipeline.students import MIN_SAMPLES

        min_samples = MIN_SAMPLES
    model = model.eval()
    example = torch.zeros(2, SAMPLE_RATE)
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=min_samples)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch, 1: samples},), dynamo=True, external_data=False,
                verbose=False, report=False,
            )
    except Exception as error:
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: "
                          f"{type(error).__name__}: {error}") from error
    proto = program.model_proto
    strip_debug_info(proto)
    set_metadata(proto, metadata)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def strip_debug_info(proto: Any) -> None:
    """Drop what the dynamo exporter adds for debugging: per-node stack traces and FX
    names (``metadata_props``, ``doc_string``) and intermediate ``value_info`` shapes.
    They were ~45% of Wav2Small's file and ONNX Runtime never reads them."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    """Set (add or replace) ``metadata_props`` on a loaded model."""
    import onnx

    merged = {p.key: p.value for p in proto.metadata_props} | {
        key: str(value) for key, value in metadata.items()}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, merged)
    proto.producer_name = "ser-pipeline"


def stamp(path: Path, metadata: dict[str, str]) -> None:
    """Rewrite ``path`` without debug info and with ``metadata`` set."""
    import onnx

    proto = onnx.load(str(path))
    strip_debug_info(proto)
    set_metadata(proto, metadata)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def name_nodes(path: Path) -> None:
    """Give every unnamed node a name, so nodes can be excluded from quantisation."""
    import onnx

    proto = onnx.load(str(path))
    changed = False
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            changed = True
    if changed:
        onnx.save_model(proto, str(path), save_as_external_data=False)


def front_end_nodes(path: Path) -> list[str]:
    """Names of the nodes upstream of the first 2-D conv: the DFT/mel/log front end."""
    import onnx

    proto = onnx.load(str(path))
    ranks = {init.name: len(init.dims) for init in proto.graph.initializer}
    producers = {out: node for node in proto.graph.node for out in node.output}
    first = next((n for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 1
                  and ranks.get(n.input[1]) == 4), None)
    if first is None:
        return []
    upstream, stack = set(), [first.input[0]]
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in upstream:
            continue
        upstream.add(node.name)
        stack.extend(node.input)
    return sorted(upstream)
