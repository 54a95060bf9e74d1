"""int8 safety: the saturation rule, the shipped recipes, CPU facts.

These checks read the quantised graph, never the CPU running them, so each one gives the
same verdict on an AVX2-only machine, an AVX-512 VNNI machine and ARM64.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_runs import make_run

from ser_pipeline.cpu import KINDS, cpu_info
from ser_pipeline.export import graph, int8
from ser_pipeline.quantize import (
    MAX_SAFE_S8_WEIGHT,
    STUDENT_RECIPES,
    TEACHER_RECIPE,
    Int8Recipe,
    Int8SafetyError,
    check_int8_safe,
    quantize,
    saturation_risks,
)
from ser_pipeline.runs import load_run_model

#: The configuration the exporter shipped before: full-range s8 weights, u8 activations.
TODAYS_U8S8 = Int8Recipe("static-qdq-conv-u8s8", "static", "qdq", "uint8", "int8", False, True,
                         ("Conv",))
TODAYS_QOPERATOR = Int8Recipe("static-qoperator-conv-u8s8", "static", "qoperator", "uint8",
                              "int8", False, True, ("Conv",))


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A fitted Wav2Small as preprocessed fp32 ONNX, its front-end nodes and clips."""
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("quantize")
    lake, run_id, records = make_run(str(work / "lake"), n=24, n_dev=8)
    model, _ = load_run_model(lake, run_id)
    fp32 = work / "model.onnx"
    graph.export_fp32(model, fp32, metadata={})
    pre, _ = int8.preprocess(fp32, work / "pre.onnx")
    graph.name_nodes(pre)
    return {"work": work, "fp32": fp32, "pre": pre, "front": graph.front_end_nodes(pre),
            "calibration": [r["signal"] for r in records[8:]]}


def quantized(student: dict, recipe: Int8Recipe) -> onnx.ModelProto:
    out = student["work"] / f"{recipe.name}.onnx"
    quantize(recipe, student["pre"], out, calibration=int8.ClipReader(student["calibration"]),
             nodes_to_exclude=student["front"])
    return onnx.load(str(out))


def matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    """x [n, k] @ W [k, m]: the shape of the teacher's transformer projections."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="proj")], "proj",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_bound_is_the_int16_pair_sum_of_u8_times_s8():
    """vpmaddubsw adds pairs of u8*s8 products in int16 with saturation: |w| <= 64 is the
    largest weight for which no u8 activation pair can leave the int16 range."""
    activations = np.full(2, 255, np.int64)  # the worst case, as uint8
    for weight in range(-128, 128):
        pair = int((activations * weight).sum())
        fits = -32768 <= pair <= 32767
        assert fits == (abs(weight) <= MAX_SAFE_S8_WEIGHT), weight
    assert 2 * 255 * MAX_SAFE_S8_WEIGHT <= 32767 < 2 * 255 * (MAX_SAFE_S8_WEIGHT + 1)


def test_todays_u8s8_student_configuration_is_flagged(student):
    for recipe in (TODAYS_U8S8, TODAYS_QOPERATOR):
        risks = saturation_risks(quantized(student, recipe))
        assert risks, recipe.name
        assert {r["op_type"] for r in risks} <= {"Conv", "QLinearConv"}
        assert all(r["max_abs_weight"] > MAX_SAFE_S8_WEIGHT for r in risks)
        with pytest.raises(Int8SafetyError, match="without VNNI"):
            check_int8_safe(quantized(student, recipe), what=recipe.name)


def test_every_shipped_student_recipe_is_saturation_free(student):
    for recipe in STUDENT_RECIPES:
        proto = quantized(student, recipe)
        assert saturation_risks(proto) == [], recipe.name
        ops = {node.op_type for node in proto.graph.node}
        assert ops & {"QLinearConv", "QuantizeLinear"}, recipe.name  # really quantised


def test_exporter_rejects_a_saturation_prone_candidate(student):
    work = student["work"] / "candidates"
    work.mkdir()
    (unsafe, unsafe_path), (safe, safe_path) = int8.quantize_candidates(
        student["fp32"], work, student["calibration"], recipes=(TODAYS_U8S8, STUDENT_RECIPES[0]))
    assert unsafe.risks and unsafe_path is None and "rejected" in unsafe.error
    assert unsafe.recipe.weight_type == "int8" and not unsafe.recipe.reduce_range
    assert safe.risks == [] and safe_path is not None and safe_path.is_file()
    assert safe.recipe.nodes_excluded == student["front"]


def test_teacher_matmuls_are_flagged_with_s8_weights_and_not_with_the_recipe(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight = np.random.default_rng(0).standard_normal((64, 32))
    source = tmp_path / "proj.onnx"
    onnx.save(matmul_model(weight), str(source))
    old = tmp_path / "old.onnx"
    quantize_dynamic(str(source), str(old), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    assert [r["op_type"] for r in saturation_risks(old)] == ["MatMulInteger"]
    new = tmp_path / "new.onnx"
    quantize(TEACHER_RECIPE, source, new)
    assert saturation_risks(new) == []
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(new)).graph.node}


def test_cpu_info_names_a_kind_from_the_flags():
    info = cpu_info()
    assert info.machine and isinstance(info.flags, dict) and info.kind in KINDS
    if info.machine in ("x86_64", "amd64"):
        vnni = info.flags["avx512_vnni"] or info.flags["avx_vnni"]
        assert ("no VNNI" in info.kind) == (info.flags["avx2"] and not vnni)
        assert info.kind in ("AVX-512 with VNNI", "AVX2 with AVX-VNNI") if vnni else True
