"""Running an exported student with ONNX Runtime, and measuring it honestly.

An exported model takes ``signal`` (float32 ``[batch, samples]``, 16 kHz) and returns
``logits`` (``[batch, 3]``: arousal, dominance, valence). Its ``metadata_props`` carry the
label order, sample rate, teacher and provenance hash, so a model file found on disk says
what it is without its manifest.

Long signals are cut into the same windows labeling uses (:mod:`ser_pipeline.windows`) and
the window outputs averaged by duration, so ``ser predict`` treats a long file the way the
teacher did when it produced the training targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.windows import weighted_average, window_bounds

#: Signals shorter than this are zero-padded: the conv stack needs a few frames to run.
#: Export checks that every model runs on exactly this many samples.
MIN_SAMPLES = 1600


class OnnxModelError(RuntimeError):
    """An ONNX file that is not a usable ser-pipeline model; the message says why."""


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (without loading the weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


class OnnxModel:
    """A ser-pipeline ONNX model in an ONNX Runtime session.

    Args:
        path: The ``.onnx`` file (fp32 or int8).
        threads: Intra-op threads for ONNX Runtime (1 = the paper's one-core setting).

    Examples:
        >>> model = OnnxModel("registry-cache/model.int8.onnx")  # doctest: +SKIP
        >>> model.predict([np.zeros(16000, np.float32)], window_s=10, overlap_s=2)  # doctest: +SKIP
        array([[0.41, 0.45, 0.52]])
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path} does not exist or is not a file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Measured here: without memory-pattern planning peak RSS on a 5 s clip is ~20%
        # lower at the same latency (a planned pattern pre-allocates every activation).
        options.enable_mem_pattern = False
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types
            raise OnnxModelError(f"{self.path} is not a loadable ONNX model: {error}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)
        self.labels: tuple[str, ...] = tuple(json.loads(meta["labels"])) if "labels" in meta \
            else LABELS
        self.sample_rate = int(meta.get("sample_rate", SAMPLE_RATE))
        self.min_samples = int(meta.get("min_samples", MIN_SAMPLES))
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise OnnxModelError(
                f"{self.path}: expected one input [batch, samples], got "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        if self.sample_rate != SAMPLE_RATE:
            raise OnnxModelError(
                f"{self.path} expects {self.sample_rate} Hz; ser-pipeline feeds {SAMPLE_RATE} Hz"
            )

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, labels={self.labels})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw forward pass: ``[batch, samples]`` float32 -> ``[batch, 3]`` float32."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[-1] < self.min_samples:
            pad = self.min_samples - batch.shape[-1]
            batch = np.pad(batch, ((0, 0), (0, pad)))
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def predict(
        self, signals: list[np.ndarray], *, window_s: float = 10.0, overlap_s: float = 2.0,
    ) -> np.ndarray:
        """A/D/V per signal, ``[n, 3]`` float64; long signals are windowed and averaged.

        Args:
            signals: 16 kHz mono float32 signals of any length (> 0 samples).
            window_s: Window length for long signals, as in labeling.
            overlap_s: Overlap between consecutive windows.
        """
        outputs, self.n_windows = [], []
        for signal in signals:
            signal = np.asarray(signal, dtype=np.float32).reshape(-1)
            if signal.size == 0:
                raise ValueError("cannot predict on an empty signal")
            bounds = window_bounds(signal.size, window_s=window_s, overlap_s=overlap_s,
                                   sample_rate=self.sample_rate)
            full = [(s, e) for s, e in bounds if e - s == bounds[0][1] - bounds[0][0]]
            rest = [(s, e) for s, e in bounds if (s, e) not in full]
            # Equal-length windows go through as one batch; the short tail on its own.
            window_out = {}
            if full:
                stacked = np.stack([signal[s:e] for s, e in full])
                for bound, row in zip(full, self.run(stacked), strict=True):
                    window_out[bound] = row
            for bound in rest:
                window_out[bound] = self.run(signal[None, bound[0]:bound[1]])[0]
            outputs.append(weighted_average(np.stack([window_out[b] for b in bounds]), bounds))
            self.n_windows.append(len(bounds))
        return np.stack(outputs) if outputs else np.zeros((0, len(self.labels)))


# -- measurement ---------------------------------------------------------------------------

# Runs in a fresh interpreter that imports only numpy and onnxruntime, so the RSS
# increase is the session's own cost and not whatever the parent process had loaded.
_MEASURE_SCRIPT = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort

path, seconds = sys.argv[1], float(sys.argv[2])
repeats, threads = int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
signal = (0.1 * rng.standard_normal((1, int(16000 * seconds)))).astype(np.float32)
def rss_kb():
    # VmHWM is this address space's peak RSS. ru_maxrss would not do: Linux carries the
    # parent's peak across fork+exec, so a child of a torch process starts at ~1 GB.
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = rss_kb()
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.enable_mem_pattern = False
start = time.perf_counter()
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
load_s = time.perf_counter() - start
name = session.get_inputs()[0].name
for _ in range(3):
    session.run(None, {name: signal})
times = []
for _ in range(repeats):
    start = time.perf_counter()
    session.run(None, {name: signal})
    times.append(time.perf_counter() - start)
after = rss_kb()
times.sort()
print(json.dumps({
    "latency_ms": 1000 * times[len(times) // 2],
    "latency_ms_p10": 1000 * times[len(times) // 10],
    "latency_ms_p90": 1000 * times[(9 * len(times)) // 10],
    "load_ms": 1000 * load_s,
    "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
    "peak_rss_increase_mb": (after - before) / 1024,
    "repeats": repeats, "threads": threads, "clip_s": seconds,
}))
"""


def measure(path: str | Path, *, seconds: float = 5.0, repeats: int = 30,
            threads: int = 1) -> dict:
    """Latency (median of ``repeats``) and peak-RSS increase of one model on one clip.

    Runs in a fresh subprocess that imports only numpy and onnxruntime. Peak RSS
    (``VmHWM``) is read after the imports and the input are ready and again after session
    creation plus all runs, so the difference is the model's added peak memory.
    """
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE_SCRIPT, str(path), str(seconds), str(repeats),
         str(threads)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if result.returncode != 0:
        raise OnnxModelError(f"measuring {path} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_peak_gflops() -> dict:
    """One core's fp32 peak: 2 FMA units x 8 fp32 lanes (256 bit) x 2 FLOP = 32 FLOP/cycle.

    That is AVX2 FMA. The AMD EPYC (Zen 4) here also reports AVX-512, but Zen 4 executes
    512-bit FMAs on its two 256-bit units, so its peak stays 32 FLOP/cycle; an Intel core
    with two 512-bit FMA units would have 64. The clock is ``cpu MHz`` from
    ``/proc/cpuinfo`` (the nominal clock a VM reports; turbo may run higher, which would
    make the achieved fraction look better than it is).
    """
    mhz = None
    flags = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":")[1])
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    flop_per_cycle = 2 * 8 * 2
    ghz = (mhz or 0.0) / 1000
    return {"ghz": ghz, "flop_per_cycle": flop_per_cycle, "peak_gflops": ghz * flop_per_cycle,
            "assumption": "2 FMA units x 8 fp32 lanes x 2 FLOP (AVX2 FMA) x cpu MHz",
            "avx512_reported": " avx512f" in flags}
