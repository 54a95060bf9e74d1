"""Distillation labels at scale: run a teacher over every clip it has not labeled yet.

How it stays correct under crashes and concurrency:

* **Selection** is an anti-join: audio ids in the lake (optionally of some corpora) minus
  ids that already have a ``teacher_labels`` row for this ``teacher_id`` (and minus ids this
  teacher already quarantined). Re-runs add nothing.
* **Shards** are planned per audio part file (a shard reads one Parquet part, never the
  whole audio table) and sorted by duration so batches need little padding. Shard inputs
  are ids and a part path, never arrays, so they travel cheaply to Prefect/Dask workers.
* **Commits** are atomic part files with deterministic keys ``content_key(teacher_id,
  sorted ids)``: a crash loses at most the shards in flight, and a re-run finishes the rest.
* **Concurrent labelers** on the same lake and teacher never write duplicate rows: each
  commit holds a short per-teacher lock object (an exclusive create, a conditional PUT on
  S3), re-reads the ids labeled so far (only part files it has not seen) and drops those
  before writing. Two labelers may compute the same clip twice; only one row lands. A lock
  left by a dead process is broken after ``LOCK_STALE_S`` (at once when its owner is a dead
  process on this host).
* **The model loads once per worker process** (:func:`cached_teacher`), not per shard.
* **Memory stays flat**: after each shard, heap pages glibc keeps free are handed back to
  the OS (:func:`release_free_memory`); without it, peak RSS grew with the clip count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ser_pipeline.audio import decode_flac
from ser_pipeline.config import get_settings
from ser_pipeline.executor import chunked, map_shards
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.teacher import ClipError, Teacher, TeacherError, cached_teacher

STAGE = "label"
LOCK_STALE_S = 60.0
LOCK_WAIT_S = 300.0
_PRELOADED: dict[str, Teacher] = {}  # teachers handed in as objects (same process only)
# Trim the C heap after a shard when glibc holds more free bytes than this (see below).
TRIM_FREE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class LabelOptions:
    """Everything a shard worker needs besides the shard (JSON-able, picklable)."""

    lake: str
    teacher: str
    device: str = "cpu"
    threads: int | None = None
    precision: str = "auto"
    window_s: float = 10.0
    overlap_s: float = 2.0
    batch_seconds: float = 64.0
    batch_size: int = 16
    run_id: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# -- planning -------------------------------------------------------------------------------
def quarantine_prefix(teacher_id: str) -> str:
    return f"teacher {teacher_id}: "


def labeled_ids(lake: Lake, teacher_id: str) -> set[str]:
    return lake.ids("teacher_labels", filter=ds.field("teacher_id") == teacher_id)


def quarantined_ids(lake: Lake, teacher_id: str) -> set[str]:
    table = lake.read("quarantine", columns=["audio_id", "message"],
                      filter=ds.field("stage") == STAGE)
    prefix = quarantine_prefix(teacher_id)
    return {a for a, m in zip(table.column("audio_id").to_pylist(),
                              table.column("message").to_pylist(), strict=True)
            if a and (m or "").startswith(prefix)}


def plan_shards(lake: Lake, *, teacher_id: str, corpora: Sequence[str] | None = None,
                shard_size: int = 64) -> tuple[list[dict], dict]:
    """Shards ``{"part", "ids", "seconds"}`` of clips still to label, and plan counts.

    Each shard's ids come from one audio part file, sorted by duration.
    """
    columns = ["audio_id", "corpus", "duration_s"]
    wanted = None
    if corpora:
        wanted = ds.field("corpus").isin(pa.array(list(corpora), pa.string()))
    done = labeled_ids(lake, teacher_id)
    bad = quarantined_ids(lake, teacher_id)
    by_part: dict[str, list[tuple[float, str]]] = {}
    seen: set[str] = set()
    total = skipped = skipped_bad = 0
    for part in lake.parts("audio"):
        table = lake.storage.read_parquet(part, columns=columns)
        if wanted is not None:
            table = table.filter(wanted)
        for audio_id, duration in zip(table.column("audio_id").to_pylist(),
                                      table.column("duration_s").to_pylist(), strict=True):
            if audio_id is None or audio_id in seen:
                continue
            seen.add(audio_id)
            total += 1
            if audio_id in done:
                skipped += 1
            elif audio_id in bad:
                skipped_bad += 1
            else:
                by_part.setdefault(part, []).append((float(duration or 0.0), audio_id))
    shards = []
    for part, items in by_part.items():
        items.sort()
        for chunk in chunked(items, shard_size):
            shards.append({"part": part, "ids": [a for _, a in chunk],
                           "seconds": float(sum(d for d, _ in chunk))})
    return shards, {"clips_in_scope": total, "skipped_already_labeled": skipped,
                    "skipped_quarantined": skipped_bad}


# -- committing -----------------------------------------------------------------------------
class _LabeledIndex:
    """Ids labeled by a teacher, refreshed incrementally (part files are immutable)."""

    def __init__(self) -> None:
        self.parts: set[str] = set()
        self.ids: set[str] = set()

    def refresh(self, lake: Lake, teacher_id: str) -> set[str]:
        for part in lake.parts("teacher_labels"):
            if part in self.parts:
                continue
            table = lake.storage.read_parquet(part, columns=["audio_id", "teacher_id"])
            mask = pc.equal(table.column("teacher_id"), teacher_id)
            self.ids.update(table.filter(mask).column("audio_id").to_pylist())
            self.parts.add(part)
        return self.ids


_INDEXES: dict[tuple[str, str], _LabeledIndex] = {}
_INDEX_LOCK = threading.Lock()


def _index_for(lake: Lake, teacher_id: str) -> _LabeledIndex:
    with _INDEX_LOCK:
        return _INDEXES.setdefault((lake.url, teacher_id), _LabeledIndex())


def _lock_path(teacher_id: str) -> str:
    return f"teacher_labels/_locks/{content_key('label-commit', teacher_id)}.lock"


def _lock_is_stale(payload: dict) -> bool:
    if time.time() - float(payload.get("at", 0)) > LOCK_STALE_S:
        return True
    if payload.get("host") == socket.gethostname():
        try:
            os.kill(int(payload.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OSError):
            return False
    return False


class CommitLock:
    """A per-teacher lock object in the lake (exclusive create; stale locks are broken)."""

    def __init__(self, lake: Lake, teacher_id: str) -> None:
        self.lake = lake
        self.path = _lock_path(teacher_id)
        self.token = uuid.uuid4().hex

    def __enter__(self) -> CommitLock:
        storage = self.lake.storage
        body = json.dumps({"token": self.token, "pid": os.getpid(),
                           "host": socket.gethostname(), "at": time.time()}).encode()
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.02
        while not storage.write_bytes(self.path, body, exclusive=True):
            try:
                held = storage.read_bytes(self.path)
                payload = json.loads(held)
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if _lock_is_stale(payload):
                try:  # only remove the very lock judged stale, not a newer one
                    if storage.read_bytes(self.path) == held:
                        storage.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"labels commit lock {storage.uri(self.path)} held for over "
                                   f"{LOCK_WAIT_S:.0f} s by {payload}; delete it if that "
                                   "labeler is gone")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if json.loads(self.lake.storage.read_bytes(self.path)).get("token") == self.token:
                self.lake.storage.remove(self.path)
        except (FileNotFoundError, json.JSONDecodeError):
            pass


def commit_labels(lake: Lake, rows: list[dict], *, teacher_id: str) -> int:
    """Write label rows for ids not labeled yet by this teacher; returns rows written."""
    if not rows:
        return 0
    with CommitLock(lake, teacher_id):
        done = _index_for(lake, teacher_id).refresh(lake, teacher_id)
        fresh = [row for row in rows if row["audio_id"] not in done]
        if not fresh:
            return 0
        fresh.sort(key=lambda row: row["audio_id"])
        key = content_key("teacher_labels", teacher_id, [row["audio_id"] for row in fresh])
        wrote = lake.write_part("teacher_labels", fresh, key=key)
        done.update(row["audio_id"] for row in fresh)
        return len(fresh) if wrote else 0


# -- one shard ------------------------------------------------------------------------------
def _read_shard_audio(lake: Lake, shard: dict) -> dict[str, tuple[bytes, str]]:
    wanted = pa.array(shard["ids"], pa.string())
    with lake.storage.open(shard["part"]) as handle:
        table = pq.read_table(handle, columns=["audio_id", "audio", "source_path"],
                              filters=ds.field("audio_id").isin(wanted))
    found: dict[str, tuple[bytes, str]] = {}
    for audio_id, audio, source in zip(table.column("audio_id").to_pylist(),
                                       table.column("audio").to_pylist(),
                                       table.column("source_path").to_pylist(), strict=True):
        found.setdefault(audio_id, ((audio or {}).get("bytes") or b"", source or ""))
    return found


def _quarantine_row(audio_id: str, source: str, reason: str, message: str, *,
                    teacher_id: str, corpus: str | None = None) -> dict:
    return {"corpus": corpus, "source_path": source, "audio_id": audio_id, "stage": STAGE,
            "reason": reason, "message": quarantine_prefix(teacher_id) + message,
            "quarantined_at": utcnow()}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl) or glibc < 2.33
        return None


def release_free_memory(*, min_free: int = TRIM_FREE_BYTES) -> bool:
    """Hand free heap pages back to the OS once glibc holds over ``min_free`` bytes of them.

    Why: each shard's batches (decoded clips, padded inputs, activations of shapes that
    change from batch to batch) leave freed memory in glibc's arenas that later shards did
    not reuse, so RSS climbed with the number of clips: label peak 1.35 GB at 200 clips,
    3.4 GB at 2,000 (bench/memory.py). Trimming keeps it flat (~1 GB) for a few percent
    of CPU (the next shard faults its pages back in). A no-op where glibc is absent.
    """
    libc = _glibc()
    if libc is None or libc.mallinfo2().fordblks <= min_free:
        return False
    libc.malloc_trim(0)
    return True


def label_shard(shard: dict, options: LabelOptions | dict) -> dict:
    """Label one shard and commit it; returns counts. Safe to retry and to run twice."""
    try:
        return _label_shard(shard, options)
    finally:
        release_free_memory()  # the shard's arrays are garbage by now


def _label_shard(shard: dict, options: LabelOptions | dict) -> dict:
    if isinstance(options, dict):
        options = LabelOptions(**options)
    started = time.perf_counter()
    lake = Lake.open(options.lake)
    teacher = _PRELOADED.get(options.teacher) or cached_teacher(
        options.teacher, device=options.device, threads=options.threads,
        precision=options.precision)
    done = _index_for(lake, teacher.teacher_id).refresh(lake, teacher.teacher_id)
    todo = [audio_id for audio_id in shard["ids"] if audio_id not in done]
    audio = _read_shard_audio(lake, {**shard, "ids": todo}) if todo else {}
    quarantine, ids, signals, sources = [], [], [], []
    for audio_id in todo:
        if audio_id not in audio:
            continue  # the id vanished from its part (rewritten lake): nothing to label
        data, source = audio[audio_id]
        try:
            signal = decode_flac(data)
            if not np.isfinite(signal).all():
                raise ClipError("non_finite_samples", "the decoded signal has NaN/inf samples")
        except ClipError as error:
            quarantine.append(_quarantine_row(audio_id, source, error.reason, error.message,
                                              teacher_id=teacher.teacher_id))
            continue
        except Exception as error:  # noqa: BLE001 - corrupt bytes in the lake
            quarantine.append(_quarantine_row(audio_id, source, "decode_error", str(error),
                                              teacher_id=teacher.teacher_id))
            continue
        ids.append(audio_id)
        signals.append(signal)
        sources.append(source)
    outputs, n_windows, failed = _predict_robust(teacher, signals, options)
    rows = []
    labeled_seconds = 0.0
    now = utcnow()
    for index, audio_id in enumerate(ids):
        if index in failed:
            reason, message = failed[index]
            quarantine.append(_quarantine_row(audio_id, sources[index], reason, message,
                                              teacher_id=teacher.teacher_id))
            continue
        values = outputs[index]
        rows.append({"audio_id": audio_id, "teacher_id": teacher.teacher_id,
                     "teacher_sha256": teacher.sha256,
                     **{name: float(values[i]) for i, name in enumerate(LABELS)},
                     "n_windows": int(n_windows[index]), "labeled_at": now,
                     "run_id": options.run_id})
        labeled_seconds += signals[index].size / SAMPLE_RATE
    written = commit_labels(lake, rows, teacher_id=teacher.teacher_id)
    if quarantine:
        quarantine.sort(key=lambda row: row["audio_id"])
        lake.write_part("quarantine", quarantine, key=content_key(
            "quarantine", STAGE, teacher.teacher_id, [r["audio_id"] for r in quarantine]))
    return {"clips_labeled": written, "audio_seconds": labeled_seconds if written else 0.0,
            "duplicates_dropped": len(rows) - written, "quarantined": len(quarantine),
            "skipped_already_labeled": len(shard["ids"]) - len(todo),
            "seconds": time.perf_counter() - started}


def _predict_robust(teacher: Teacher, signals: list[np.ndarray], options: LabelOptions):
    """Predict a shard; if the batch fails, retry clip by clip and report the failures."""
    kwargs = dict(window_s=options.window_s, overlap_s=options.overlap_s,
                  batch_seconds=options.batch_seconds, batch_size=options.batch_size)
    failed: dict[int, tuple[str, str]] = {}
    outputs = np.full((len(signals), 3), np.nan)
    n_windows = np.zeros(len(signals), dtype=np.int32)
    if not signals:
        return outputs, n_windows, failed
    try:
        outputs, n_windows = teacher.predict_with_windows(signals, **kwargs)
    except Exception:  # noqa: BLE001 - find the clip(s) at fault, keep the rest
        for index, signal in enumerate(signals):
            try:
                out, windows = teacher.predict_with_windows([signal], **kwargs)
                outputs[index], n_windows[index] = out[0], windows[0]
            except ClipError as error:
                failed[index] = (error.reason, error.message)
            except Exception as error:  # noqa: BLE001
                failed[index] = ("model_error", f"{type(error).__name__}: {error}"[:500])
    for index in range(len(signals)):
        if index not in failed and not np.isfinite(outputs[index]).all():
            failed[index] = ("non_finite_output", "the teacher returned NaN/inf for this clip")
    return outputs, n_windows, failed


# -- the stage ------------------------------------------------------------------------------
def new_label_run_id() -> str:
    return f"label-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def summarize(results: list[dict], *, plan: dict, teacher: Teacher, wall_s: float,
              options: LabelOptions, shards: int, corpora: Sequence[str] | None) -> dict:
    labeled = sum(r["clips_labeled"] for r in results)
    seconds = sum(r["audio_seconds"] for r in results)
    summary = {
        "clips_labeled": labeled,
        "audio_hours": round(seconds / 3600, 4),
        "audio_seconds": round(seconds, 2),
        "wall_s": round(wall_s, 2),
        "audio_seconds_per_second": round(seconds / wall_s, 3) if wall_s > 0 else 0.0,
        "skipped_already_labeled": plan["skipped_already_labeled"]
        + sum(r["skipped_already_labeled"] for r in results),
        "skipped_quarantined": plan["skipped_quarantined"],
        "quarantined": sum(r["quarantined"] for r in results),
        "duplicates_dropped": sum(r["duplicates_dropped"] for r in results),
        "shards": shards,
        "teacher_id": teacher.teacher_id,
        "teacher_sha256": teacher.sha256,
        "is_random": teacher.is_random,
        "license": teacher.license,
        "device": options.device,
        "corpora": list(corpora) if corpora else "all",
        "run_id": options.run_id,
        "lake": options.lake,
    }
    warnings = []
    if teacher.is_random:
        warnings.append("this teacher has random weights: its labels carry no emotion "
                        "information (fine-tune it with 'ser teacher finetune')")
    fallback = getattr(teacher, "int8_fallback", None)
    if fallback:  # the int8 teacher was not trusted on this CPU: fp32 labeled instead
        warnings.append(f"labeled with the fp32 teacher: {fallback}")
        summary["int8_fallback"] = fallback
    if warnings:
        summary["warning"] = "; ".join(warnings)
    return summary


def label_lake(
    lake: Lake, *, teacher: str | Teacher, corpora: Sequence[str] | None = None,
    shard_size: int | None = None, window_s: float = 10.0, overlap_s: float = 2.0,
    batch_seconds: float = 64.0, batch_size: int = 16, device: str = "cpu",
    threads: int | None = None, precision: str = "auto", executor: Executor | None = None,
    max_workers: int | None = None, run_id: str | None = None,
    shard_fn: Callable[[dict, dict], dict] | None = None,
) -> dict:
    """Label every clip the teacher has not labeled yet; returns the run summary.

    Args:
        lake: the lake to read audio from and write ``teacher_labels`` to.
        teacher: a spec (``hf:``, ``onnx:``, ``ensemble:``) or a loaded teacher. Pass a
            spec when shards run in other processes (Dask): workers load it themselves.
        corpora: restrict to these corpora (default: the whole lake).
        shard_size: clips per shard (default: settings ``shard_size``).
        window_s: window length for long clips (seconds).
        overlap_s: overlap between windows (seconds).
        batch_seconds: bound on padded audio seconds per forward pass.
        batch_size: bound on windows per forward pass.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        threads: torch/ORT intra-op threads (None: library default).
        precision: ``auto``, ``fp32``, ``fp16``, ``bf16`` or ``int8`` (see load_teacher).
        executor: run shards on this executor (a Dask client's executor, a process pool).
        max_workers: concurrent shards for the default thread pool (default: settings).
        run_id: recorded on every label row (default: a new ``label-...`` id).
        shard_fn: replaces :func:`label_shard` (flows wrap it in a Prefect task).

    Returns:
        Summary: clips_labeled, audio_hours, audio_seconds_per_second,
        skipped_already_labeled, quarantined, teacher_id, is_random, ...
    """
    settings = get_settings()
    started = time.perf_counter()
    if isinstance(teacher, Teacher):
        if executor is not None:
            raise TeacherError("pass the teacher as a spec string when shards run on an "
                               "executor: workers load the model themselves")
        spec = f"loaded:{id(teacher)}"
        _PRELOADED[spec] = teacher
        loaded = teacher
    else:
        spec = teacher
        loaded = cached_teacher(spec, device=device, threads=threads, precision=precision)
    options = LabelOptions(lake=lake.url, teacher=spec, device=device, threads=threads,
                           precision=precision, window_s=window_s, overlap_s=overlap_s,
                           batch_seconds=batch_seconds, batch_size=batch_size,
                           run_id=run_id or new_label_run_id())
    shards, plan = plan_shards(lake, teacher_id=loaded.teacher_id, corpora=corpora,
                               shard_size=shard_size or settings.shard_size)
    fn = functools.partial(shard_fn or label_shard, options=options.to_dict())
    try:
        results = map_shards(fn, shards,
                             executor=executor, max_workers=max_workers or settings.max_workers,
                             description=f"label {loaded.teacher_id}")
    finally:
        _PRELOADED.pop(spec, None)
    return summarize(results, plan=plan, teacher=loaded, wall_s=time.perf_counter() - started,
                     options=options, shards=len(shards), corpora=corpora)

