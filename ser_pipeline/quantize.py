"""int8 that is right on every CPU: the recipes and the saturation rule.

Why a rule and not only a parity check. ONNX Runtime's x86 int8 kernels differ by CPU.
With AVX-512 VNNI (or AVX-VNNI) a u8 x s8 product is summed straight into int32
(``vpdpbusd``). On AVX2 without VNNI the same u8 x s8 GEMM uses ``vpmaddubsw``, which adds
*each pair* of u8 x s8 products in int16 **with saturation**: ``255 * 127 * 2 = 64,770``
does not fit in 32,767, so a model quantised with full-range s8 weights silently loses
accuracy there while passing parity on a VNNI machine. (s8 activations do not help: x86
MLAS turns them into u8 by flipping the sign bit and runs the same kernel.) u8 x u8 runs
on 16-bit lanes (``vpmaddwd``) and cannot saturate; ARM64 uses ``(u|s)dot``, exact too.

So a model is safe on every CPU when, for every integer product, the operands are u8 x u8,
or the s8 operand is a weight whose values satisfy ``2 * 255 * |w| <= 32767``, i.e.
``|w| <= 64`` (what ``reduce_range=True`` produces: 7-bit weights). :func:`saturation_risks`
checks exactly that on the quantised graph, so the check gives the same answer on whatever
machine runs it; the exporter rejects any candidate it flags.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.cpu import cpu_info  # noqa: F401 - re-exported: the machine that measured

#: Largest |s8 weight| whose pair sum with u8 activations fits int16: 2*255*64 = 32,640.
MAX_SAFE_S8_WEIGHT = 64
#: Nodes that multiply two integer tensors, with the input positions of their two operands.
_INTEGER_PRODUCTS = {"QLinearConv": (0, 3), "QLinearMatMul": (0, 3), "ConvInteger": (0, 1),
                     "MatMulInteger": (0, 1)}
#: Float nodes that ONNX Runtime fuses into integer kernels when both inputs come from
#: DequantizeLinear (QDQ format).
_QDQ_PRODUCTS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class Int8SafetyError(ValueError):
    """A quantised model can saturate int16 accumulators on CPUs without VNNI."""


@dataclass(frozen=True)
class Int8Recipe:
    """One way to quantise a graph; recorded verbatim in ``export.json`` and manifests.

    Attributes:
        name: Short id, e.g. ``static-qdq-conv-u8u8``.
        mode: ``static`` (calibrated activations) or ``dynamic`` (activations at run time).
        quant_format: ``qdq`` or ``qoperator`` (static only).
        activation_type: ``uint8`` or ``int8``.
        weight_type: ``uint8`` or ``int8``.
        reduce_range: 7-bit weights (ONNX Runtime ``reduce_range``).
        per_channel: One scale per output channel.
        op_types: The op types quantised; everything else stays fp32.
    """

    name: str
    mode: str
    quant_format: str | None
    activation_type: str
    weight_type: str
    reduce_range: bool
    per_channel: bool
    op_types: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "op_types": list(self.op_types)}


#: Student candidates: the conv stack in int8, front end and pooling in fp32 (see
#: docs/stages/export.md for why whole-graph int8 fails these students). Only
#: saturation-free type choices are listed; which one ships is decided by parity, then by
#: latency measured on the exporting machine.
STUDENT_RECIPES = (
    Int8Recipe("static-qdq-conv-u8u8", "static", "qdq", "uint8", "uint8", False, True,
               ("Conv",)),
    Int8Recipe("static-qdq-conv-u8s8-7bit", "static", "qdq", "uint8", "int8", True, True,
               ("Conv",)),
    Int8Recipe("static-qoperator-conv-u8s8-7bit", "static", "qoperator", "uint8", "int8",
               True, True, ("Conv",)),
)
#: The teacher's transformer MatMuls; u8 weights keep it exact on every CPU (measured
#: against 7-bit s8 weights in bench/teacher.py, see docs/stages/export.md).
TEACHER_RECIPE = Int8Recipe("dynamic-matmul-u8u8", "dynamic", None, "uint8", "uint8", False,
                            True, ("MatMul",))


#: Calibration methods by name (ONNX Runtime's ``CalibrationMethod`` member names); exports
#: use min-max (measured against percentile and entropy on out-of-domain audio:
#: BENCHMARKS.md, bench/int8_ood.py).
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def quantize(recipe: Int8Recipe, source: str | Path, out: str | Path, *,
             calibration: Any = None, nodes_to_exclude: Sequence[str] = (),
             calibrate_method: str = "minmax") -> None:
    """Write ``out``: ``source`` quantised by ``recipe``.

    Args:
        recipe: What to quantise and with which types.
        source: fp32 ONNX file (after ``quant_pre_process`` where that works).
        out: Where the int8 file goes.
        calibration: A ``CalibrationDataReader`` (static recipes).
        nodes_to_exclude: Node names kept in fp32.
        calibrate_method: One of :data:`CALIBRATION_METHODS` (static recipes).
    """
    if calibrate_method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {calibrate_method!r}: use one of "
                         f"{', '.join(CALIBRATION_METHODS)}")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" and the like are advice
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if recipe.mode == "dynamic":
                quantize_dynamic(str(source), str(out), weight_type=types[recipe.weight_type],
                                 per_channel=recipe.per_channel,
                                 reduce_range=recipe.reduce_range,
                                 op_types_to_quantize=list(recipe.op_types),
                                 nodes_to_exclude=list(nodes_to_exclude))
            else:
                quantize_static(
                    str(source), str(out), calibration,
                    quant_format=QuantFormat.QDQ if recipe.quant_format == "qdq"
                    else QuantFormat.QOperator,
                    activation_type=types[recipe.activation_type],
                    weight_type=types[recipe.weight_type], per_channel=recipe.per_channel,
                    reduce_range=recipe.reduce_range,
                    calibrate_method=getattr(CalibrationMethod,
                                             CALIBRATION_METHODS[calibrate_method]),
                    op_types_to_quantize=list(recipe.op_types),
                    nodes_to_exclude=list(nodes_to_exclude))
    finally:
        root.setLevel(level)


# -- the saturation rule ---------------------------------------------------------------------

def saturation_risks(model: Any) -> list[dict[str, Any]]:
    """Integer products in ``model`` that can saturate on x86 CPUs without VNNI.

    Args:
        model: An ONNX file path or a loaded ``ModelProto``.

    Returns:
        One record per risky node (``node``, ``op_type``, ``operands``, ``max_abs_weight``,
        ``why``); empty when the model is safe on every CPU. The answer depends only on
        the graph and its weights, never on the machine running the check.
    """
    import onnx
    from onnx import numpy_helper

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    graph = proto.graph
    integer = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    # Only 8-bit constants can be kernel operands; converting the rest would cost seconds
    # on a large teacher.
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer
               if init.data_type in integer}
    producers = {out: node for node in graph.node for out in node.output}

    def operand(name: str) -> tuple[str, np.ndarray | None]:
        """(integer dtype, values if it is a constant) of an integer tensor."""
        if name in weights:
            return str(weights[name].dtype), weights[name]
        node = producers.get(name)
        if node is not None and node.op_type == "QuantizeLinear":
            zero = weights.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            return (str(zero.dtype) if zero is not None else "uint8"), None
        if node is not None and node.op_type == "DynamicQuantizeLinear":
            return "uint8", None
        return "unknown", None

    def dequantized(name: str) -> str | None:
        node = producers.get(name)
        return node.input[0] if node is not None and node.op_type == "DequantizeLinear" \
            else None

    risks = []
    for node in graph.node:
        if node.op_type in _INTEGER_PRODUCTS:
            names = [node.input[i] for i in _INTEGER_PRODUCTS[node.op_type]]
        elif node.op_type in _QDQ_PRODUCTS and len(node.input) >= 2:
            names = [dequantized(node.input[0]), dequantized(node.input[1])]
            if None in names:
                continue  # a float product: not an int8 kernel
        else:
            continue
        operands = [operand(name) for name in names]
        why = _risk(operands)
        if why:
            signed = [values for dtype, values in operands if dtype == "int8"]
            largest = max((int(np.abs(v.astype(np.int32)).max()) for v in signed
                           if v is not None and v.size), default=None)
            risks.append({"node": node.name or node.op_type, "op_type": node.op_type,
                          "operands": [dtype for dtype, _ in operands],
                          "max_abs_weight": largest, "why": why})
    return risks


def _risk(operands: list[tuple[str, np.ndarray | None]]) -> str | None:
    for dtype, values in operands:
        if dtype == "int8":
            if values is None:
                return ("an s8 activation is unbounded: x86 without VNNI sums u8 x s8 pairs "
                        "in int16 with saturation")
            largest = int(np.abs(values.astype(np.int32)).max()) if values.size else 0
            if largest > MAX_SAFE_S8_WEIGHT:
                return (f"s8 weights reach |{largest}| > {MAX_SAFE_S8_WEIGHT}: 2 x 255 x "
                        f"{largest} overflows the int16 pair sum of x86 CPUs without VNNI "
                        "(use u8 weights or reduce_range)")
        elif dtype not in ("uint8",):
            return f"operand type {dtype} is not one this check can prove safe"
    return None


def check_int8_safe(model: Any, *, what: str = "model") -> None:
    """Raise :class:`Int8SafetyError` naming every risky node (see :func:`saturation_risks`)."""
    risks = saturation_risks(model)
    if risks:
        shown = "; ".join(f"{r['node']} ({r['op_type']} {'x'.join(r['operands'])}): {r['why']}"
                          for r in risks[:3])
        more = f" (+{len(risks) - 3} more)" if len(risks) > 3 else ""
        raise Int8SafetyError(f"{what} can lose accuracy on CPUs without VNNI: {shown}{more}; "
                              "re-export it with this version (u8 weights or 7-bit weights)")
