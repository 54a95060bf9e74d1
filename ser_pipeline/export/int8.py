"""int8 candidates for a student: static quantisation of the conv stack, each candidate
checked by the saturation rule (:mod:`ser_pipeline.quantize`) before parity can see it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_pipeline.export.graph import front_end_nodes, name_nodes, stamp
from ser_pipeline.export.result import Candidate, RecipeRecord, SaturationRisk
from ser_pipeline.onnx_model import INPUT_NAME, OnnxModel
from ser_pipeline.quantize import STUDENT_RECIPES, Int8Recipe, quantize, saturation_risks

log = logging.getLogger(__name__)


class ClipReader:
    """ONNX Runtime calibration reader over clips (one clip per batch)."""

    def __init__(self, signals: Sequence[np.ndarray]) -> None:
        self._items = iter([{INPUT_NAME: np.asarray(s, np.float32)[None, :]} for s in signals])

    def get_next(self) -> dict | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - part of the reader protocol
        raise NotImplementedError


def preprocess(fp32: Path, out: Path) -> tuple[Path, str]:
    """``quant_pre_process`` (shape inference + graph optimisation) where it works."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [("symbolic", {}), ("skip_symbolic_shape", {"skip_symbolic_shape": True})]
    for label, kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32), str(out), **kwargs)
            return out, label
        except Exception as error:  # crashes on some dynamo graphs: fall through
            log.info("quant_pre_process (%s) failed: %s", label, error)
    return fp32, "skipped (quant_pre_process failed)"


def quantize_candidates(fp32: Path, work: Path, calibration: Sequence[np.ndarray], *,
                        recipes: Sequence[Int8Recipe] = STUDENT_RECIPES,
                        calibrate_method: str = "minmax",
                        ) -> list[tuple[Candidate, Path | None]]:
    """Build every int8 candidate in ``work``: ``(record, file or None)`` per recipe.

    A candidate that :func:`~ser_pipeline.quantize.saturation_risks` flags keeps its
    ``risks`` in the record but gets no file, so it can never be chosen; neither can one
    that failed to build (``error`` says why).
    """
    pre, pre_label = preprocess(fp32, work / "pre.onnx")
    name_nodes(pre)
    front = front_end_nodes(pre)
    built = []
    for recipe in recipes:
        out = work / f"int8-{recipe.name}.onnx"
        record = Candidate(method=recipe.name, preprocess=pre_label,
                           recipe=RecipeRecord(**recipe.to_dict(), nodes_excluded=front))
        path: Path | None = None
        try:
            quantize(recipe, pre, out, calibration=ClipReader(calibration),
                     nodes_to_exclude=front, calibrate_method=calibrate_method)
            stamp(out, {})  # strip debug info so sizes compare like for like
            OnnxModel(out)  # loads in ORT
            record.bytes = out.stat().st_size
            record.risks = [SaturationRisk(**risk) for risk in saturation_risks(out)]
            if record.risks:
                record.error = (f"rejected: {len(record.risks)} integer products can "
                                "saturate on CPUs without VNNI")
            else:
                path = out
        except Exception as error:
            record.error = f"{type(error).__name__}: {str(error)[:300]}"
        built.append((record, path))
    return built
