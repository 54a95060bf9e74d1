"""The one ONNX Runtime runner for students: sessions, the clip rule, timing, measurement.

Every student file is run through this module: ``ser predict``, ``ser evaluate --model``,
export parity, the int8 latency ranking and the benches. (The teacher keeps its own runner
in :mod:`ser_pipeline.teacher.onnx`.) So there is one of each:

- **session options** (:func:`session_options`): one intra-op thread by default, the
  paper's one-core setting (``threads=`` overrides it), sequential execution, no
  memory-pattern planning;
- **naming rule** (:func:`io_names`): input ``signal``, output ``logits``, or the only
  input/output under another name; the input must be ``[batch, samples]`` with a dynamic
  length;
- **minimum length**: a window shorter than the model's ``min_samples`` metadata (the
  students' ``MIN_SAMPLES`` at export) is zero-padded to it;
- **clip rule** (:func:`predict_clip`): a long signal is cut into the windows labeling
  uses (:mod:`ser_pipeline.windows`), equal-length windows of *one* clip run in batches,
  and the outputs are averaged by duration. A clip's prediction never depends on which
  other clips share its call;
- **timer** (:func:`time_runs`), used in-process (:func:`latency_ms`, to rank files
  against each other) and in a fresh interpreter (:func:`measure`, for added peak RSS).

An exported model takes ``signal`` (float32 ``[batch, samples]``, 16 kHz) and returns
``logits`` (``[batch, 3]``: arousal, dominance, valence). Its ``metadata_props`` carry the
label order, sample rate, minimum length, teacher and provenance hash, so a model file
found on disk says what it is without its manifest.

This file imports only the standard library and numpy at module level (ONNX Runtime and
the rest of ser_pipeline inside the functions that need them): :func:`measure` loads it on
its own into a fresh interpreter, so the measured RSS is the session's, not the library's.

Examples:
    >>> import onnx
    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("ReduceMean", ["signal"], ["mean"], axes=[1], keepdims=1),
    ...      helper.make_node("Concat", ["mean", "mean", "mean"], ["logits"], axis=1)],
    ...     "toy", [helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["b", "n"])],
    ...     [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3])])
    >>> proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    >>> path = __import__("tempfile").mkdtemp() + "/toy.onnx"
    >>> helper.set_model_props(proto, {"min_samples": "1024"}); onnx.save(proto, path)
    >>> model = OnnxModel(path)
    >>> (model.input_name, model.output_name, model.min_samples, model.threads)
    ('signal', 'logits', 1024, 1)
    >>> model.predict([np.ones(512, np.float32)]).round(3).tolist()  # padded to 1024 samples
    [[0.5, 0.5, 0.5]]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Intra-op threads unless a caller says otherwise: the paper's one-core setting.
DEFAULT_THREADS = 1
#: The input and output names every exported student has.
INPUT_NAME = "signal"
OUTPUT_NAME = "logits"
#: Windows of one clip run together, at most this many per call.
BATCH_SIZE = 16


class OnnxModelError(RuntimeError):
    """An ONNX file that is not a usable ser-pipeline model; the message says why."""


# -- sessions --------------------------------------------------------------------------------

def session_options(*, threads: int = DEFAULT_THREADS) -> Any:
    """The ONNX Runtime options every student session uses.

    Measured here: without memory-pattern planning, peak RSS on a 5 s clip is ~20% lower
    at the same latency (a planned pattern pre-allocates every activation).
    """
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    return options


def open_session(path: str | Path, *, threads: int = DEFAULT_THREADS) -> Any:
    """An ``InferenceSession`` on the CPU for a student file: the only place one is opened.

    Raises:
        OnnxModelError: the file is missing or is not a loadable ONNX model.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path} does not exist or is not a file")
    try:
        return ort.InferenceSession(str(path), session_options(threads=threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own Fail/InvalidGraph types
        raise OnnxModelError(f"{path} is not a loadable ONNX model: {error}") from None


def _pick(names: list[str], preferred: str, path: Any, what: str) -> str:
    if preferred in names:
        return preferred
    if len(names) == 1:
        return names[0]
    raise OnnxModelError(f"{path}: cannot tell which {what} to use among {names}; "
                         f"name it {preferred!r}")


def io_names(session: Any, *, path: Any = "model") -> tuple[str, str]:
    """``(input, output)``: ``signal``/``logits``, else the only input/output.

    Raises:
        OnnxModelError: ambiguous names, an input that is not ``[batch, samples]``, or a
            fixed input length.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    input_name = _pick([i.name for i in inputs], INPUT_NAME, path, "input")
    output_name = _pick([o.name for o in outputs], OUTPUT_NAME, path, "output")
    shape = next(i.shape for i in inputs if i.name == input_name)
    if len(shape) != 2:
        raise OnnxModelError(f"{path}: input {input_name!r} has shape {shape}; expected "
                             "[batch, samples]")
    if isinstance(shape[1], int) and shape[1] > 0:
        raise OnnxModelError(f"{path}: input length is fixed at {shape[1]} samples; export "
                             "the model with a dynamic time axis")
    return input_name, output_name


def time_runs(run: Callable[[], Any], *, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def _test_signal(seconds: float) -> np.ndarray:
    """The clip every latency figure is measured on: seeded noise, 16 kHz."""
    return (0.1 * np.random.default_rng(0).standard_normal((1, int(16_000 * seconds)))
            ).astype(np.float32)


def latency_ms(path: str | Path, *, seconds: float = 5.0, repeats: int = 10,
               threads: int = DEFAULT_THREADS) -> float:
    """Median ms of one run on a ``seconds`` clip, in this process.

    Quick, for ranking files against each other in one run (int8 candidates, fp32 vs
    int8); the fresh-process figures with memory come from :func:`measure`.
    """
    session = open_session(path, threads=threads)
    input_name, output_name = io_names(session, path=path)
    signal = _test_signal(seconds)
    times = time_runs(lambda: session.run([output_name], {input_name: signal}),
                      repeats=repeats)
    return 1000 * float(np.median(times))


# -- fresh-process measurement ---------------------------------------------------------------

# The child loads only this file (not the ser_pipeline package, which would pull pyarrow
# and pydantic), so "before" is an interpreter with numpy and ONNX Runtime imported.
_CHILD = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ser_student_runner", sys.argv[1])
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)
runner._measure_child(sys.argv[2:])
"""


def _rss_kb() -> int:
    # VmHWM is this address space's peak RSS. ru_maxrss would not do: Linux carries the
    # parent's peak across fork+exec, so a child of a torch process starts at ~1 GB.
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure_child(argv: list[str]) -> None:
    import onnxruntime  # noqa: F401 - imported before the baseline, like numpy

    path, seconds, repeats, threads = argv[0], float(argv[1]), int(argv[2]), int(argv[3])
    signal = _test_signal(seconds)
    before = _rss_kb()
    started = time.perf_counter()
    session = open_session(path, threads=threads)
    load_s = time.perf_counter() - started
    input_name, output_name = io_names(session, path=path)
    times = sorted(time_runs(lambda: session.run([output_name], {input_name: signal}),
                             repeats=repeats, warmup=3))
    after = _rss_kb()
    print(json.dumps({
        "latency_ms": 1000 * times[len(times) // 2],
        "latency_ms_p10": 1000 * times[len(times) // 10],
        "latency_ms_p90": 1000 * times[(9 * len(times)) // 10],
        "load_ms": 1000 * load_s,
        "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
        "peak_rss_increase_mb": (after - before) / 1024,
        "repeats": repeats, "threads": threads, "clip_s": seconds,
    }))


def measure(path: str | Path, *, seconds: float = 5.0, repeats: int = 30,
            threads: int = DEFAULT_THREADS) -> dict[str, float]:
    """Latency (median of ``repeats``) and peak-RSS increase of one model on one clip.

    Runs in a fresh interpreter that loads only numpy, ONNX Runtime and this file. Peak
    RSS (``VmHWM``) is read once the imports and the input are ready and again after
    session creation plus all runs, so the difference is the model's added peak memory.
    """
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, __file__, str(path), str(seconds), str(repeats),
         str(threads)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if result.returncode != 0:
        raise OnnxModelError(f"measuring {path} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the clip rule ---------------------------------------------------------------------------

def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (without loading the weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def predict_clip(run_batch: Callable[[np.ndarray], np.ndarray], signal: np.ndarray, *,
                 min_samples: int, window_s: float = 10.0, overlap_s: float = 2.0,
                 batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, int]:
    """A/D/V of one clip (float64 ``[3]``) and its number of windows.

    Windows shorter than ``min_samples`` are zero-padded to it; windows of equal length
    go through ``run_batch`` together, at most ``batch_size`` at a time (students
    normalise each row on its own but would *see* zero padding, so rows of one call always
    share their true length). Used for torch students too, so every path applies a
    student to a clip the same way.

    Raises:
        ValueError: an empty signal, or ``run_batch`` returned the wrong shape.
    """
    from ser_pipeline.schemas import LABELS
    from ser_pipeline.windows import weighted_average, window_bounds

    signal = np.asarray(signal, dtype=np.float32).reshape(-1)
    if signal.size == 0:
        raise ValueError("cannot predict on an empty signal")
    bounds = window_bounds(signal.size, window_s=window_s, overlap_s=overlap_s)
    by_length: dict[int, list[int]] = {}
    for index, (start, end) in enumerate(bounds):
        by_length.setdefault(end - start, []).append(index)
    outputs = np.empty((len(bounds), len(LABELS)), dtype=np.float64)
    for group in by_length.values():
        for first in range(0, len(group), batch_size):
            chunk = group[first:first + batch_size]
            batch = np.stack([signal[bounds[i][0]:bounds[i][1]] for i in chunk])
            if batch.shape[1] < min_samples:
                batch = np.pad(batch, ((0, 0), (0, min_samples - batch.shape[1])))
            result = np.asarray(run_batch(batch), dtype=np.float64)
            if result.shape != (len(chunk), len(LABELS)):
                raise ValueError(f"model returned shape {result.shape} for a batch of "
                                 f"{len(chunk)}; expected [{len(chunk)}, {len(LABELS)}] "
                                 "(arousal, dominance, valence)")
            outputs[chunk] = result
    return weighted_average(outputs, bounds), len(bounds)


class OnnxModel:
    """A student ONNX file in an ONNX Runtime session.

    Args:
        path: The ``.onnx`` file (fp32 or int8).
        threads: Intra-op threads (default 1, the paper's one-core setting).
        batch_size: Most windows of one clip per call.
    """

    def __init__(self, path: str | Path, *, threads: int = DEFAULT_THREADS,
                 batch_size: int = BATCH_SIZE) -> None:
        from ser_pipeline.schemas import LABELS, SAMPLE_RATE

        self.path = Path(path)
        self.threads = threads
        self.session = open_session(self.path, threads=threads)
        self.input_name, self.output_name = io_names(self.session, path=self.path)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata: dict[str, str] = meta
        self.labels: tuple[str, ...] = tuple(json.loads(meta["labels"])) if "labels" in meta \
            else LABELS
        self.sample_rate = int(meta.get("sample_rate", SAMPLE_RATE))
        if self.sample_rate != SAMPLE_RATE:
            raise OnnxModelError(f"{self.path} expects {self.sample_rate} Hz; ser-pipeline "
                                 f"feeds {SAMPLE_RATE} Hz")
        if "min_samples" in meta:
            self.min_samples = int(meta["min_samples"])
        else:  # a file from elsewhere: the students' own minimum
            from ser_pipeline.students import MIN_SAMPLES

            self.min_samples = MIN_SAMPLES
        shape = next(i.shape for i in self.session.get_inputs() if i.name == self.input_name)
        fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.batch_size = min(batch_size, fixed_batch) if fixed_batch else batch_size
        self.n_windows: list[int] = []

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, labels={self.labels}, threads={self.threads})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw forward pass: ``[batch, samples]`` float32 -> ``[batch, 3]`` float32.

        Rows shorter than ``min_samples`` are zero-padded to it.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[-1] < self.min_samples:
            batch = np.pad(batch, ((0, 0), (0, self.min_samples - batch.shape[-1])))
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def predict_clip(self, signal: np.ndarray, *, window_s: float = 10.0,
                     overlap_s: float = 2.0) -> tuple[np.ndarray, int]:
        """:func:`predict_clip` with this model: ``(A/D/V float64 [3], n_windows)``."""
        return predict_clip(self.run, signal, min_samples=self.min_samples, window_s=window_s,
                            overlap_s=overlap_s, batch_size=self.batch_size)

    def predict(self, signals: list[np.ndarray], *, window_s: float = 10.0,
                overlap_s: float = 2.0) -> np.ndarray:
        """A/D/V per signal, ``[n, 3]`` float64; ``n_windows`` holds the window counts.

        Args:
            signals: 16 kHz mono float32 signals of any length (> 0 samples).
            window_s: Window length for long signals, as in labeling.
            overlap_s: Overlap between consecutive windows.
        """
        results = [self.predict_clip(s, window_s=window_s, overlap_s=overlap_s)
                   for s in signals]
        self.n_windows = [n for _, n in results]
        return np.stack([values for values, _ in results]) if results \
            else np.zeros((0, len(self.labels)))
