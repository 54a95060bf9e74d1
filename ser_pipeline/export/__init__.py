"""Export a trained student to ONNX (fp32 + int8), check parity, measure it.

The stage in modules, each one concept:

- :mod:`~ser_pipeline.export.graph`: torch -> ONNX, metadata, graph surgery;
- :mod:`~ser_pipeline.export.int8`: int8 candidates behind the saturation rule;
- :mod:`~ser_pipeline.export.parity`: ONNX against torch, int8 against fp32;
- :mod:`~ser_pipeline.export.measure`: latency, memory, GFLOP/s, the paper's figures;
- :mod:`~ser_pipeline.export.lake` and :mod:`~ser_pipeline.export.licence`: what a run's
  export reads (clips, CCC) and inherits (the teacher's licence);
- :mod:`~ser_pipeline.export.run`: the drivers :func:`export_model`, :func:`export_run`;
- :mod:`~ser_pipeline.export.result`: the typed result, the only reader and writer of
  ``export.json``.

``metadata_props`` of both files: ``labels``, ``sample_rate``, ``teacher_id``,
``teacher_sha256``, ``student``, ``run_id``, ``min_samples``, ``quantization`` and
``manifest_hash``: the sha256 of the canonical JSON (sorted keys, no spaces) of the
run's :class:`~ser_pipeline.export.result.Provenance`. The registry writes that section
verbatim into ``manifest.json``, so a model file can be matched to its manifest without
the circularity of hashing a manifest that lists the file's own sha.
"""

from ser_pipeline.export.errors import ExportError, ParityError
from ser_pipeline.export.graph import FP32_FILE, INT8_FILE, OUTPUT_NAME, export_fp32
from ser_pipeline.export.int8 import quantize_candidates
from ser_pipeline.export.lake import MAX_CLIP_S, lake_clips, run_ccc
from ser_pipeline.export.licence import teacher_license
from ser_pipeline.export.measure import (
    check_targets,
    count_flops,
    paper_targets_for,
    performance,
)
from ser_pipeline.export.parity import (
    INT8_PARITY_MIN,
    TORCH_PARITY_MIN,
    ccc_per_dimension,
    int8_withheld_reason,
    onnx_predict,
    torch_predict,
)
from ser_pipeline.export.result import EXPORT_SCHEMA, ExportResult, Provenance, load_export
from ser_pipeline.export.run import export_model, export_run
from ser_pipeline.hashing import canonical_hash

__all__ = [
    "EXPORT_SCHEMA", "FP32_FILE", "INT8_FILE", "INT8_PARITY_MIN", "MAX_CLIP_S",
    "OUTPUT_NAME", "TORCH_PARITY_MIN", "ExportError", "ExportResult",
    "ParityError", "Provenance", "canonical_hash", "ccc_per_dimension", "check_targets",
    "count_flops", "export_fp32", "export_model", "export_run", "int8_withheld_reason",
    "lake_clips", "load_export", "onnx_predict", "paper_targets_for",
    "performance", "quantize_candidates", "run_ccc", "teacher_license", "torch_predict",
]
