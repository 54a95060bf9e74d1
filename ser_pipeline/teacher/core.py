"""The teacher interface and the rules every kind of teacher shares.

:class:`Teacher` is the interface (batched windowed prediction), with
its errors, the signal check, device and thread settings, teacher ids and the licence
rule. The kinds build on this module: :class:`TorchTeacher` (``hf:`` specs) in
:mod:`.torch_teacher`, :class:`EnsembleTeacher` in :mod:`.ensemble` and the ONNX teacher
in :mod:`.onnx`; :mod:`.load` turns spec strings into teachers of every kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.windows import weighted_average, window_bounds

AUDEERING_LICENSE = "cc-by-nc-sa-4.0"
#: Markers of the audEERING dimensional models (and ensembles built on them) in a hub id
#: or a teacher id.
_AUDEERING_MARKERS = ("audeering", "w2v2-l-robust", "wavlm-large")
MIN_SAMPLES = 400  # the wav2vec2 feature encoder's receptive field (25 ms at 16 kHz)


class TeacherError(ValueError):
    """A teacher cannot be loaded or used; the message says what to fix."""


class ClipError(ValueError):
    """One clip cannot be labeled; ``reason`` is a stable quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def check_signal(signal: np.ndarray) -> np.ndarray:
    """A clip the model can take (float32, 1-D, finite, >= 25 ms) or a :class:`ClipError`."""
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ClipError("bad_shape", f"expected a mono 1-D signal, got shape {signal.shape}")
    if signal.size < MIN_SAMPLES:
        raise ClipError("too_short", f"{signal.size} samples; the teacher needs at least "
                        f"{MIN_SAMPLES} (25 ms at 16 kHz)")
    if not np.isfinite(signal).all():
        raise ClipError("non_finite_samples", "the signal contains NaN or infinite samples")
    return signal


class Teacher:
    """A model mapping 16 kHz mono signals to arousal, dominance, valence (not clipped).

    Subclasses implement :meth:`_run_batch`. Prediction cuts long clips into windows,
    sorts all windows by length and batches similar lengths together (little padding),
    then averages each clip's windows weighted by duration.
    """

    name: str
    teacher_id: str
    sha256: str
    license: str | None
    is_random: bool
    device: str = "cpu"
    #: ONNX graphs take no mask, so they are only fed batches of equal-length windows.
    equal_length_batches: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.teacher_id!r})"

    def info(self) -> dict:
        """What a summary or manifest records about this teacher."""
        return {"teacher_id": self.teacher_id, "teacher_sha256": self.sha256,
                "license": self.license, "is_random": self.is_random, "device": self.device}

    def _run_batch(self, signals: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, signals: Sequence[np.ndarray], **options: float) -> np.ndarray:
        """Outputs ``[n, 3]`` (A, D, V) for ``signals``; options as :meth:`predict_with_windows`."""
        return self.predict_with_windows(signals, **options)[0]

    def predict_with_windows(
        self, signals: Sequence[np.ndarray], *, window_s: float = 10.0, overlap_s: float = 2.0,
        batch_seconds: float = 64.0, batch_size: int = 16,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Outputs ``[n, 3]`` and the number of windows per clip ``[n]``.

        Args:
            signals: 16 kHz mono float signals.
            window_s: clips longer than this are cut into windows of this length.
            overlap_s: overlap between consecutive windows.
            batch_seconds: bound on padded audio per batch (``max_len * batch``).
            batch_size: bound on windows per batch.

        Raises:
            ClipError: a clip is empty, too short or not finite (label quarantines it).
        """
        clean = [check_signal(signal) for signal in signals]
        pieces: list[tuple[int, int, int]] = []  # (clip, start, end)
        bounds_per_clip = []
        for index, signal in enumerate(clean):
            bounds = window_bounds(signal.size, window_s=window_s, overlap_s=overlap_s)
            # a tail shorter than the receptive field cannot be run; it joins its neighbour
            if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_SAMPLES:
                bounds = bounds[:-1]
                bounds[-1] = (bounds[-1][0], signal.size)
            bounds_per_clip.append(bounds)
            pieces.extend((index, start, end) for start, end in bounds)
        outputs = np.zeros((len(pieces), 3), dtype=np.float64)
        for batch in self._plan_batches(pieces, batch_seconds=batch_seconds,
                                        batch_size=batch_size):
            arrays = [clean[pieces[i][0]][pieces[i][1]:pieces[i][2]] for i in batch]
            outputs[batch] = self._run_batch(arrays)
        results = np.zeros((len(clean), 3), dtype=np.float64)
        n_windows = np.zeros(len(clean), dtype=np.int32)
        start = 0
        for index, bounds in enumerate(bounds_per_clip):
            results[index] = weighted_average(outputs[start:start + len(bounds)], bounds)
            n_windows[index] = len(bounds)
            start += len(bounds)
        return results, n_windows

    def _plan_batches(self, pieces: list[tuple[int, int, int]], *, batch_seconds: float,
                      batch_size: int) -> list[list[int]]:
        order = sorted(range(len(pieces)), key=lambda i: (pieces[i][2] - pieces[i][1], i))
        budget = max(batch_seconds, 1e-9) * SAMPLE_RATE
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            length = pieces[index][2] - pieces[index][1]
            longest = length  # sorted ascending: the newcomer is the longest
            if current and (
                len(current) >= batch_size or longest * (len(current) + 1) > budget
                or (self.equal_length_batches
                    and length != pieces[current[0]][2] - pieces[current[0]][1])
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda[:N]`` or ``auto`` (CUDA when available); errors say what to fix."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TeacherError(f"device {device!r} requested but no CUDA GPU is visible to "
                               "torch here: use --device cpu (or auto)")
        return device
    raise TeacherError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (explicit beats torch's guess on shared machines)."""
    if threads is not None:
        import torch

        if threads < 1:
            raise TeacherError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def readable(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-") or "teacher"


def make_teacher_id(name: str, sha256: str, *, is_random: bool) -> str:
    name = readable(name)
    if is_random and "random" not in name:
        name = f"{name}-random"
    return f"{name}-{sha256[:12]}"


def license_for_id(name: str | None) -> str | None:
    """The licence of a teacher's weights as far as its hub id or teacher id tells it
    (``None``: the name does not say). The one rule the loader and the exporter share.

    Examples:
        >>> license_for_id("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim")
        'cc-by-nc-sa-4.0'
        >>> license_for_id("my-lab/teacher") is None
        True
    """
    lowered = (name or "").lower()
    return AUDEERING_LICENSE if any(mark in lowered for mark in _AUDEERING_MARKERS) else None
