"""The labeling stage: plan a run, label its shards on an executor, summarise.

:func:`start_labeling` and :meth:`LabelRun.summarize` are the pieces both drivers share:
:func:`label_lake` runs the shards on a bounded thread pool or a given executor, and
``flows/label.py`` runs them as Prefect tasks.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field

from ser_pipeline.executor import map_shards
from ser_pipeline.label.plan import PlanCounts, Shard, plan_shards
from ser_pipeline.label.shard import LOADED, LabelOptions, ShardResult, label_shard
from ser_pipeline.lake import Lake, utcnow
from ser_pipeline.teacher import Teacher, TeacherError, cached_teacher

LABEL_SUMMARY_VERSION = 1


@dataclass(frozen=True)
class LabelSummary:
    """What a labeling run did (``ser label --json`` prints :meth:`to_dict`)."""

    clips_labeled: int
    audio_hours: float
    audio_seconds: float
    wall_s: float
    audio_seconds_per_second: float
    skipped_already_labeled: int
    skipped_quarantined: int
    quarantined: int
    duplicates_dropped: int
    shards: int
    teacher_id: str
    teacher_sha256: str
    is_random: bool
    license: str | None
    device: str
    corpora: list[str] | str  # "all" when not restricted
    run_id: str
    lake: str
    int8_fallback: str | None = None  # why the int8 teacher was not trusted on this CPU
    warning: str | None = None
    schema_version: int = field(default=LABEL_SUMMARY_VERSION)

    def to_dict(self) -> dict:
        """The JSON form; ``int8_fallback`` and ``warning`` appear only when set."""
        data = asdict(self)
        for optional in ("int8_fallback", "warning"):
            if data[optional] is None:
                del data[optional]
        return data


@dataclass(frozen=True)
class LabelRun:
    """A planned run: the loaded teacher, the options workers get and the shards."""

    teacher: Teacher
    options: LabelOptions
    shards: list[Shard]
    plan: PlanCounts
    corpora: tuple[str, ...] | None
    started: float  # time.perf_counter() when the run began

    def summarize(self, results: Sequence[ShardResult]) -> LabelSummary:
        """The run's summary from its shards' results."""
        wall_s = time.perf_counter() - self.started
        seconds = sum(r.audio_seconds for r in results)
        warnings = []
        if self.teacher.is_random:
            warnings.append("this teacher has random weights: its labels carry no emotion "
                            "information (fine-tune it with 'ser teacher finetune')")
        fallback = getattr(self.teacher, "int8_fallback", None) or None
        if fallback:  # the int8 teacher was not trusted on this CPU: fp32 labeled instead
            warnings.append(f"labeled with the fp32 teacher: {fallback}")
        return LabelSummary(
            clips_labeled=sum(r.clips_labeled for r in results),
            audio_hours=round(seconds / 3600, 4),
            audio_seconds=round(seconds, 2),
            wall_s=round(wall_s, 2),
            audio_seconds_per_second=round(seconds / wall_s, 3) if wall_s > 0 else 0.0,
            skipped_already_labeled=self.plan.skipped_already_labeled
            + sum(r.skipped_already_labeled for r in results),
            skipped_quarantined=self.plan.skipped_quarantined,
            quarantined=sum(r.quarantined for r in results),
            duplicates_dropped=sum(r.duplicates_dropped for r in results),
            shards=len(self.shards),
            teacher_id=self.teacher.teacher_id,
            teacher_sha256=self.teacher.sha256,
            is_random=self.teacher.is_random,
            license=self.teacher.license,
            device=self.options.device,
            corpora=list(self.corpora) if self.corpora else "all",
            run_id=self.options.run_id,
            lake=self.options.lake,
            int8_fallback=fallback,
            warning="; ".join(warnings) or None,
        )


def new_label_run_id() -> str:
    return f"label-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def start_labeling(
    lake: Lake, *, teacher: str | Teacher, corpora: Sequence[str] | None = None,
    shard_size: int | None = None, window_s: float = 10.0, overlap_s: float = 2.0,
    batch_seconds: float = 64.0, batch_size: int = 16, device: str = "cpu",
    threads: int | None = None, precision: str = "auto", run_id: str | None = None,
    workers: int | None = None,
) -> LabelRun:
    """Load the teacher (once per process) and plan the shards still to label.

    Arguments are those of :func:`label_lake`; ``workers`` (default: settings
    ``max_workers``) is how many shards run at once, so a small run is cut into at least
    that many. The run's wall time starts here, so the summary counts the model load and
    the planning.
    """
    started = time.perf_counter()
    if isinstance(teacher, Teacher):
        loaded, spec = teacher, f"{LOADED}{teacher.teacher_id}"
    else:
        spec = teacher
        loaded = cached_teacher(spec, device=device, threads=threads, precision=precision)
    options = LabelOptions(lake=lake.url, teacher=spec, device=device, threads=threads,
                           precision=precision, window_s=window_s, overlap_s=overlap_s,
                           batch_seconds=batch_seconds, batch_size=batch_size,
                           run_id=run_id or new_label_run_id())
    settings = lake.storage.settings
    shards, plan = plan_shards(lake, teacher_id=loaded.teacher_id, corpora=corpora,
                               shard_size=shard_size or settings.label_shard_size,
                               workers=workers or settings.max_workers)
    return LabelRun(teacher=loaded, options=options, shards=shards, plan=plan,
                    corpora=tuple(corpora) if corpora else None, started=started)


def label_lake(
    lake: Lake, *, teacher: str | Teacher, corpora: Sequence[str] | None = None,
    shard_size: int | None = None, window_s: float = 10.0, overlap_s: float = 2.0,
    batch_seconds: float = 64.0, batch_size: int = 16, device: str = "cpu",
    threads: int | None = None, precision: str = "auto", executor: Executor | None = None,
    max_workers: int | None = None, run_id: str | None = None,
) -> LabelSummary:
    """Label every clip the teacher has not labeled yet; returns the run summary.

    Args:
        lake: the lake to read audio from and write ``teacher_labels`` to.
        teacher: a spec (``hf:``, ``onnx:``, ``ensemble:``) or a loaded teacher. Pass a
            spec when shards run in other processes (Dask): workers load it themselves.
        corpora: restrict to these corpora (default: the whole lake).
        shard_size: at most this many clips per shard (default: settings
            ``label_shard_size``); a small run is cut so that every worker gets a shard.
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

    Raises:
        TeacherError: the spec names no loadable teacher, or a loaded teacher was passed
            together with an executor.
    """
    if isinstance(teacher, Teacher) and executor is not None:
        raise TeacherError("pass the teacher as a spec string when shards run on an "
                           "executor: workers load the model themselves")
    run = start_labeling(lake, teacher=teacher, corpora=corpora, shard_size=shard_size,
                         window_s=window_s, overlap_s=overlap_s, batch_seconds=batch_seconds,
                         batch_size=batch_size, device=device, threads=threads,
                         precision=precision, run_id=run_id, workers=max_workers)
    work = functools.partial(label_shard, options=run.options,
                             teacher=teacher if isinstance(teacher, Teacher) else None)
    results = map_shards(work, run.shards, executor=executor,
                         max_workers=max_workers or lake.storage.settings.max_workers,
                         description=f"label {run.teacher.teacher_id}")
    return run.summarize(results)
