"""Which file ``ser predict`` serves by default, and why: the :class:`Serving` section of a
manifest and the rule that fills it (:func:`choose_serving`), from fp32 and int8 latencies.

:func:`ser_pipeline.registry.manifest.serving_for` applies the rule with latencies from
the publishing machine.

Examples:
    >>> choose_serving({"model.onnx"}, fp32_ms=5.0, int8_ms=None, clip_s=5.0, threads=1,
    ...                kind=None, withheld_reason="parity").reason
    'no int8 file (parity)'
"""

from __future__ import annotations

from typing import Any

from ser_pipeline.cpu import CpuInfo
from ser_pipeline.export import FP32_FILE, INT8_FILE
from ser_pipeline.export.result import Record


class Serving(Record):
    """Which file ``ser predict`` serves when the URI names no precision, and why.

    ``fp32_ms``/``int8_ms`` are medians on a ``clip_s`` clip with ``threads`` threads,
    measured back to back on ``measured_on`` (the machine that published); they are
    ``None`` where a file is absent or an old manifest recorded no figure.
    """

    default_file: str
    reason: str
    fp32_ms: float | None = None
    int8_ms: float | None = None
    clip_s: float | None = None
    threads: int | None = None
    measured_on: CpuInfo | None = None


def choose_serving(files: set[str] | dict[str, Any], *, fp32_ms: float | None,
                   int8_ms: float | None, clip_s: float | None, threads: int | None,
                   kind: str | None, withheld_reason: str | None = None) -> Serving:
    """The file to serve by default: the faster of fp32 and int8 when both latencies are
    known, int8 (the behaviour before latencies were compared) when they are not, fp32
    when there is no int8 file."""
    figures = {"fp32_ms": fp32_ms, "int8_ms": int8_ms if INT8_FILE in files else None,
               "clip_s": clip_s, "threads": threads}
    if INT8_FILE not in files:
        return Serving(default_file=FP32_FILE, **figures,
                       reason=f"no int8 file ({withheld_reason or 'not published'})")
    if fp32_ms is None or int8_ms is None:
        return Serving(default_file=INT8_FILE, **figures,
                       reason="no fp32/int8 latency pair recorded: int8, as before")
    faster, slower = ("fp32", "int8") if fp32_ms < int8_ms else ("int8", "fp32")
    ms = {"fp32": fp32_ms, "int8": int8_ms}
    return Serving(default_file=FP32_FILE if faster == "fp32" else INT8_FILE, **figures,
                   reason=f"{faster} is faster: {ms[faster]:.1f} ms vs {slower} "
                          f"{ms[slower]:.1f} ms per {clip_s:g} s clip, {threads} thread"
                          f"{'s' if threads != 1 else ''}, on {kind}")
