"""The CPU that measured something: its kind for int8 numerics, and one core's fp32 peak.

int8 parity and latency depend on the CPU (see :mod:`ser_pipeline.quantize`), so every
figure the exporter and the registry record carries the machine that measured it. This is
the one reader of ``/proc/cpuinfo``.

Examples:
    >>> info = cpu_info()
    >>> info.kind in KINDS
    True
    >>> cpu_peak_gflops().flop_per_cycle
    32
"""

from __future__ import annotations

import functools
import platform

from pydantic import BaseModel, ConfigDict

#: The int8-relevant CPU flags recorded with every measurement.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
                  "asimddp", "i8mm")
#: Every kind :func:`cpu_info` can name.
KINDS = ("ARM64", "ARM64 with dot product", "AVX-512 with VNNI", "AVX2 with AVX-VNNI",
         "AVX2-only, no VNNI", "x86 without AVX2")


class CpuInfo(BaseModel):
    """The CPU that measured parity and latency: model, int8-relevant flags and a kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: str
    model: str | None
    kind: str
    flags: dict[str, bool]


class CpuPeak(BaseModel):
    """One core's nominal fp32 peak and the assumption behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ghz: float
    flop_per_cycle: int
    peak_gflops: float
    assumption: str
    avx512_reported: bool


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> tuple[str | None, frozenset[str], float | None]:
    """(model name, flags, cpu MHz) of the first processor in ``/proc/cpuinfo``."""
    model, flags, mhz = None, frozenset(), None
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                elif key == "model name" and model is None:
                    model = value.strip()
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
    except OSError:  # not Linux: the kind then rests on platform alone
        pass
    return model, flags, mhz


def cpu_info() -> CpuInfo:
    """This machine's CPU, as recorded next to parity and latency figures."""
    model, flags, _ = _proc_cpuinfo()
    machine = platform.machine().lower()
    present = {flag: flag in flags for flag in RELEVANT_FLAGS}
    if machine in ("arm64", "aarch64"):
        kind = "ARM64" + (" with dot product" if present["asimddp"] else "")
    elif present["avx512_vnni"] or present["avx_vnni"]:
        kind = "AVX-512 with VNNI" if present["avx512_vnni"] else "AVX2 with AVX-VNNI"
    elif present["avx2"]:
        kind = "AVX2-only, no VNNI"
    else:
        kind = "x86 without AVX2"
    return CpuInfo(machine=machine, model=model or platform.processor() or None, kind=kind,
                   flags=present)


def cpu_peak_gflops() -> CpuPeak:
    """One core's fp32 peak: 2 FMA units x 8 fp32 lanes (256 bit) x 2 FLOP = 32 FLOP/cycle.

    That is AVX2 FMA. The AMD EPYC (Zen 4) here also reports AVX-512, but Zen 4 executes
    512-bit FMAs on its two 256-bit units, so its peak stays 32 FLOP/cycle; an Intel core
    with two 512-bit FMA units would have 64. The clock is ``cpu MHz`` from
    ``/proc/cpuinfo`` (the nominal clock a VM reports; turbo may run higher, which would
    make the achieved fraction look better than it is).
    """
    _, flags, mhz = _proc_cpuinfo()
    flop_per_cycle = 2 * 8 * 2
    ghz = (mhz or 0.0) / 1000
    return CpuPeak(ghz=ghz, flop_per_cycle=flop_per_cycle, peak_gflops=ghz * flop_per_cycle,
                   assumption="2 FMA units x 8 fp32 lanes x 2 FLOP (AVX2 FMA) x cpu MHz",
                   avx512_reported="avx512f" in flags)
