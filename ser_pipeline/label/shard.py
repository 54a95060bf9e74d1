"""One shard: read its clips from its audio parts, run the teacher, commit, quarantine.

A worker process loads the model once (:func:`~ser_pipeline.teacher.cached_teacher`) and
reuses it for every shard it runs. Large heap blocks get their own mappings, and the C
heap is trimmed after every ``PREDICT_CHUNK`` clips (:mod:`ser_pipeline.label.memory`), so
a worker's memory does not grow with the number of clips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ser_pipeline.audio import decode_flac
from ser_pipeline.label.commit import commit_labels, labeled_index
from ser_pipeline.label.memory import large_blocks_mapped, release_free_memory
from ser_pipeline.label.plan import STAGE, Shard
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.quarantine import QuarantineRow
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.teacher import ClipError, Teacher, TeacherError, cached_teacher

#: Clips per teacher call inside a shard (the heap is trimmed between calls).
PREDICT_CHUNK = 64
#: ``LabelOptions.teacher`` of a run handed a loaded teacher: no worker can load it.
LOADED = "loaded:"


@dataclass(frozen=True)
class LabelOptions:
    """Everything a shard worker needs besides the shard (picklable for Dask).

    ``teacher`` is a spec the worker loads (once per process); ``loaded:<id>`` when the
    run was handed a teacher object, which then travels with the shard function instead.
    """

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


@dataclass(frozen=True)
class ShardResult:
    """What one shard did."""

    clips_labeled: int
    audio_seconds: float  # of the clips labeled
    duplicates_dropped: int  # labeled here, but another labeler's row landed first
    quarantined: int
    skipped_already_labeled: int
    seconds: float  # wall time


def label_shard(shard: Shard, options: LabelOptions, *, teacher: Teacher | None = None,
                ) -> ShardResult:
    """Label one shard and commit it. Safe to retry and to run twice.

    Args:
        shard: the clips (from :func:`~ser_pipeline.label.plan.plan_shards`).
        options: the run's options.
        teacher: a loaded teacher to use instead of loading ``options.teacher`` (same
            process only).
    """
    with large_blocks_mapped():
        try:
            return _label_shard(shard, options, teacher or _worker_teacher(options))
        finally:
            release_free_memory()  # the shard's arrays are garbage by now


def _worker_teacher(options: LabelOptions) -> Teacher:
    if options.teacher.startswith(LOADED):
        raise TeacherError("this run was handed a loaded teacher, which other processes "
                           "cannot load: pass the teacher as a spec string")
    return cached_teacher(options.teacher, device=options.device, threads=options.threads,
                          precision=options.precision)


def _label_shard(shard: Shard, options: LabelOptions, teacher: Teacher) -> ShardResult:
    started = time.perf_counter()
    lake = Lake.open(options.lake)
    done = labeled_index(lake.url, teacher.teacher_id).refresh(lake, teacher.teacher_id)
    todo = [audio_id for audio_id in shard.ids if audio_id not in done]
    audio = _read_shard_audio(lake, shard.parts, todo) if todo else {}
    quarantine: list[QuarantineRow] = []

    def reject(audio_id: str, source: str, reason: str, message: str) -> None:
        quarantine.append(QuarantineRow(stage=STAGE, reason=reason, message=message,
                                        source_path=source, audio_id=audio_id,
                                        teacher_id=teacher.teacher_id))

    ids, signals, sources = [], [], []
    for audio_id in todo:
        if audio_id not in audio:
            continue  # the id vanished from its part (rewritten lake): nothing to label
        data, source = audio[audio_id]
        try:
            signal = decode_flac(data)
            if not np.isfinite(signal).all():
                raise ClipError("non_finite_samples", "the decoded signal has NaN/inf samples")
        except ClipError as error:
            reject(audio_id, source, error.reason, error.message)
            continue
        except Exception as error:  # noqa: BLE001 - corrupt bytes in the lake
            reject(audio_id, source, "decode_error", str(error))
            continue
        ids.append(audio_id)
        signals.append(signal)
        sources.append(source)
    outputs, n_windows, failed = _predict_in_chunks(teacher, signals, options)
    rows = []
    labeled_seconds = 0.0
    now = utcnow()
    for index, audio_id in enumerate(ids):
        if index in failed:
            reject(audio_id, sources[index], *failed[index])
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
        quarantine.sort(key=lambda row: row.audio_id or "")
        lake.write_part("quarantine", [row.to_dict() for row in quarantine], key=content_key(
            "quarantine", STAGE, teacher.teacher_id, [row.audio_id for row in quarantine]))
    return ShardResult(clips_labeled=written,
                       audio_seconds=labeled_seconds if written else 0.0,
                       duplicates_dropped=len(rows) - written, quarantined=len(quarantine),
                       skipped_already_labeled=len(shard.ids) - len(todo),
                       seconds=time.perf_counter() - started)


def _read_shard_audio(lake: Lake, parts: tuple[str, ...], ids: list[str],
                      ) -> dict[str, tuple[bytes, str]]:
    """``{audio_id: (flac bytes, source path)}`` of ``ids`` in the shard's audio part files."""
    wanted = pa.array(ids, pa.string())
    found: dict[str, tuple[bytes, str]] = {}
    for part in parts:
        with lake.storage.open(part) as handle:
            table = pq.read_table(handle, columns=["audio_id", "audio", "source_path"],
                                  filters=ds.field("audio_id").isin(wanted))
        for audio_id, audio, source in zip(table.column("audio_id").to_pylist(),
                                           table.column("audio").to_pylist(),
                                           table.column("source_path").to_pylist(),
                                           strict=True):
            found.setdefault(audio_id, ((audio or {}).get("bytes") or b"", source or ""))
    return found


def _predict_in_chunks(teacher: Teacher, signals: list[np.ndarray], options: LabelOptions,
                       ) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[str, str]]]:
    """:func:`_predict_robust` over ``PREDICT_CHUNK`` clips at a time, trimming the heap
    between chunks: a shard's memory then does not grow with its length."""
    outputs = np.full((len(signals), 3), np.nan)
    n_windows = np.zeros(len(signals), dtype=np.int32)
    failed: dict[int, tuple[str, str]] = {}
    for start in range(0, len(signals), PREDICT_CHUNK):
        stop = start + PREDICT_CHUNK
        outputs[start:stop], n_windows[start:stop], chunk_failed = _predict_robust(
            teacher, signals[start:stop], options)
        failed.update({start + index: why for index, why in chunk_failed.items()})
        release_free_memory()
    return outputs, n_windows, failed


def _predict_robust(teacher: Teacher, signals: list[np.ndarray], options: LabelOptions,
                    ) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[str, str]]]:
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
