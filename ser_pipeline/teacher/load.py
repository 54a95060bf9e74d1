"""Spec strings to teachers: the one entry point that knows every kind of teacher.

A *spec* names a teacher:

* ``hf:<hub-id-or-local-folder>``: an audEERING-style model (wav2vec2 or WavLM backbone,
  picked from the folder's ``config.json``), loaded strictly.
* ``onnx:<path.onnx>``: a teacher exported by :func:`export_teacher_onnx`, run by
  ONNX Runtime.
* ``ensemble:<spec>,<spec>[,...]``: the average of several teachers (the paper's
  teacher). Members are separated by commas at the top level; wrap a member in square
  brackets when it contains a comma itself, e.g. a nested ensemble:
  ``ensemble:hf:a,[ensemble:hf:b,hf:c]``.

It sits above :mod:`.core` (the teacher interface), :mod:`.torch_teacher`, :mod:`.ensemble`
and :mod:`.onnx` (the teacher kinds), so none of those imports the dispatcher.
"""

from __future__ import annotations

import functools
import threading

from ser_pipeline.teacher.core import Teacher, TeacherError, resolve_device, set_threads
from ser_pipeline.teacher.ensemble import EnsembleTeacher, split_members
from ser_pipeline.teacher.onnx import OnnxTeacher
from ser_pipeline.teacher.torch_teacher import load_hf_teacher


def load_teacher(spec: str, *, device: str = "cpu", threads: int | None = None,
                 precision: str = "auto") -> Teacher:
    """Load the teacher a spec names.

    Args:
        spec: ``hf:<id-or-folder>``, ``onnx:<file>`` or ``ensemble:<spec>,<spec>``.
        device: ``cpu`` (default), ``cuda[:N]`` or ``auto``.
        threads: torch/ONNX Runtime intra-op threads (None keeps the library default).
        precision: ``auto`` (fp32 on CPU, bf16/fp16 autocast on CUDA), ``fp32``, ``fp16``,
            ``bf16`` or ``int8`` (dynamic int8 Linear layers, CPU only).

    Raises:
        TeacherError: unknown spec, missing model, mismatched weights, CUDA without a GPU.

    Examples:
        >>> load_teacher("nope:x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ser_pipeline.teacher.core.TeacherError: unknown teacher spec 'nope:x': use hf:...
    """
    spec = (spec or "").strip()
    kind, _, target = spec.partition(":")
    if not target or kind not in ("hf", "onnx", "ensemble"):
        raise TeacherError(f"unknown teacher spec {spec!r}: use hf:<hub-id-or-folder>, "
                           "onnx:<file.onnx> or ensemble:<spec>,<spec>")
    device = resolve_device(device)
    set_threads(threads)
    if kind == "hf":
        return load_hf_teacher(target, device=device, precision=precision)
    if kind == "onnx":
        return OnnxTeacher(target, device=device, threads=threads)
    return EnsembleTeacher([load_teacher(member, device=device, precision=precision)
                            for member in split_members(target)])


#: Teachers kept loaded per process, the least recently used going first: a worker labels
#: with one or two teachers (an ensemble is one entry), and each can hold gigabytes.
CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_cached(spec: str, device: str, threads: int | None, precision: str) -> Teacher:
    return load_teacher(spec, device=device, threads=threads, precision=precision)


def cached_teacher(spec: str, *, device: str = "cpu", threads: int | None = None,
                   precision: str = "auto") -> Teacher:
    """One teacher per (spec, device, threads, precision) per process: shards share it."""
    with _CACHE_LOCK:  # one load at a time: two shards asking at once load it once
        return _load_cached(spec, device, threads, precision)


def teacher_cache_info() -> functools._CacheInfo:
    """Loads (``misses``), reuses (``hits``) and size of the :func:`cached_teacher` cache.

    Examples:
        >>> teacher_cache_info().maxsize == CACHE_SIZE
        True
    """
    return _load_cached.cache_info()
