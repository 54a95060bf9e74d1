"""What an exported model costs: latency, added peak RSS, GFLOP/s, and the paper's figures.

Every figure comes from the student runner's one timer
(:func:`ser_pipeline.onnx_model.time_runs`): in this process to rank files against each
other, in a fresh one (:func:`ser_pipeline.onnx_model.measure`) for memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ser_pipeline.cpu import cpu_peak_gflops
from ser_pipeline.export.graph import INT8_FILE
from ser_pipeline.export.result import ExportResult, Measurement, Performance, Target
from ser_pipeline.onnx_model import measure
from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.students.families import family_of


def paper_targets_for(student: str) -> dict[str, float] | None:
    """The paper's figures for ``student`` (``None``: the paper gives none), as its
    family declares them in :mod:`ser_pipeline.students.families`.

    Examples:
        >>> paper_targets_for("wav2small")["latency_ms"]
        9.0
        >>> paper_targets_for("mobilenetv3-s") is None
        True
    """
    targets = family_of(student).paper_targets
    return targets.to_dict() if targets is not None else None


def count_flops(model: Any, *, seconds: float = 5.0) -> int:
    """FLOPs of one forward pass on a ``seconds`` clip (conv/matmul, 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.eval()(torch.zeros(1, int(SAMPLE_RATE * seconds)))
    return int(counter.get_total_flops())


def performance(model: Any, fp32: Path, int8: Path | None, *, repeats: int = 30,
                seconds: float = 5.0) -> Performance:
    """Latency, added peak RSS and achieved GFLOP/s on one thread for a ``seconds`` clip."""
    flops = count_flops(model, seconds=seconds)
    peak = cpu_peak_gflops()

    def figures(path: Path) -> Measurement:
        measured = Measurement(**measure(path, seconds=seconds, repeats=repeats, threads=1))
        achieved = flops / 1e9 / (measured.latency_ms / 1000)
        measured.gflops_achieved = achieved
        measured.fraction_of_fp32_peak = achieved / peak.peak_gflops if peak.peak_gflops \
            else None
        return measured

    fp32_figures = figures(fp32)
    int8_figures = figures(int8) if int8 is not None else None
    return Performance(
        clip_s=seconds, threads=1, gflop_per_clip=flops / 1e9, cpu_peak=peak,
        fp32=fp32_figures, int8=int8_figures,
        int8_speedup_vs_fp32=fp32_figures.latency_ms / int8_figures.latency_ms
        if int8_figures else None)


def check_targets(result: ExportResult, targets: dict[str, float]) -> dict[str, Target]:
    """The paper's figures against ours (the int8 file's): ``{figure: Target}``."""
    int8_file = result.files.get(INT8_FILE)
    int8_perf = result.performance.int8 if result.performance else None
    ours = {"int8_bytes": int8_file.bytes if int8_file else None,
            "latency_ms": int8_perf.latency_ms if int8_perf else None,
            "peak_rss_increase_mb": int8_perf.peak_rss_increase_mb if int8_perf else None}
    return {key: Target(ours=ours.get(key), target=target,
                        met=ours.get(key) is not None and ours[key] <= target)
            for key, target in targets.items()}
