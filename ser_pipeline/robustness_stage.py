"""The robustness stage: a model on perturbed dev clips, recorded in ``robustness/``.

:func:`run_robustness` wires :func:`ser_pipeline.robustness.robustness_suite` to the lake
and to evaluation's models and windowing:

1. **The model** is what ``ser evaluate`` loads (:func:`ser_pipeline.evaluate.load_predictor`):
   a run's torch student, an ONNX file, a model folder or a ``registry://`` URI (through
   the one student runner, :class:`ser_pipeline.onnx_model.OnnxModel`). Each clip, clean
   or perturbed, goes through the clip rule :func:`ser_pipeline.onnx_model.predict_clip`
   with evaluation's windows, so the clean figures equal ``ser evaluate``'s.
2. **The clips** are one split (default ``dev``) of each corpus, chosen as evaluation
   chooses them (:func:`ser_pipeline.evaluate.select_clips`), at most ``max_clips`` per
   corpus (a seeded subset: the clips with the smallest ``sha256(seed:audio_id)``). Their
   audio stays FLAC-compressed in memory and is decoded when a batch needs it.
3. **The reference** is the latest teacher label (the model's teacher, or ``teacher_id``)
   or the latest human label of each clip, as in evaluation
   (:func:`ser_pipeline.evaluate.latest_references`). Intervals resample speakers where
   the lake knows them (``audio.speaker``), clips otherwise.
4. **Clean predictions** already stored by ``ser evaluate`` for the same model and
   windowing (``predictions/``) are reused; otherwise they are computed.
5. **Rows** (:data:`ser_pipeline.schemas.ROBUSTNESS`): one part per (model, corpus, split,
   reference, teacher), whose key hashes the model name and key, the clips, their
   references and the options. Re-running with the same inputs finds the part and
   computes nothing (``reused``); the figures are read back.

A clip whose audio does not decode or is empty is left out and counted in ``notices``
(``ser evaluate`` quarantines it); a clip without a reference is left out and counted; a
model error or non-finite output on one perturbed clip makes that clip's prediction NaN,
which the suite drops for that perturbation, and is counted.

Examples:
    >>> import tempfile
    >>> from ser_pipeline.lake import Lake
    >>> run_robustness(Lake.open(tempfile.mkdtemp()), model="m.onnx", reference="x")
    Traceback (most recent call last):
    ...
    ser_pipeline.robustness_stage.RobustnessError: unknown reference 'x': use 'teacher' or 'human'
    >>> sorted(PERTURBATIONS)[:2]  # the suite's default: every perturbation
    ['gain_minus20db', 'gain_plus6db_clipped']
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.audio import decode_flac
from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate import (
    EvaluateError,
    ModelIdentity,
    Predictor,
    Selection,
    latest_references,
    load_predictor,
    read_predictions,
    select_clips,
)
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.onnx_model import BATCH_SIZE, DEFAULT_THREADS, predict_clip
from ser_pipeline.perturb import PERTURBATIONS, PerturbationError
from ser_pipeline.progress import progress_bar
from ser_pipeline.robustness import SER_TESTS, Thresholds, robustness_suite
from ser_pipeline.schemas import LABELS, ROBUSTNESS
from ser_pipeline.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED

#: Clips per corpus unless a caller says otherwise: 10 model passes over each (clean and
#: 9 perturbations), with the clips' FLAC bytes held in memory.
DEFAULT_MAX_CLIPS = 1000
REFERENCES = ("teacher", "human")


class RobustnessError(ValueError):
    """The robustness suite cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class SuiteRecord:
    """One suite run: a model on one corpus and split against one reference.

    Attributes:
        robustness_id: The part key (also the rows' ``robustness_id``).
        request: Hash of what was asked (model key, clips, references, options); with the
            model's name it gives the part key.
        corpus: Corpus of the clips.
        split: Split of the clips.
        split_name: Split definition.
        reference: ``teacher`` or ``human``.
        teacher_id: The teacher (the model's, for human rows too).
        n_clips: Clips scored.
        rows: The ``robustness`` rows, one per (perturbation, dimension).
        reused: The rows were already in the lake: nothing was computed.
        written: This call wrote the part.
    """

    robustness_id: str
    request: str
    corpus: str
    split: str
    split_name: str | None
    reference: str
    teacher_id: str | None
    n_clips: int
    rows: tuple[dict[str, Any], ...]
    reused: bool
    written: bool

    @property
    def passed(self) -> bool:
        return all(row["passed"] for row in self.rows)


@dataclass(frozen=True)
class RobustnessRun:
    """What :func:`run_robustness` did: the model, its suite runs and the notices."""

    identity: ModelIdentity
    model_file: str | None
    records: tuple[SuiteRecord, ...]
    notices: tuple[str, ...] = field(default=())

    def rows(self) -> list[dict[str, Any]]:
        return [row for record in self.records for row in record.rows]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (one entry per suite run, pass/fail per perturbation)."""
        suites = []
        for record in self.records:
            verdicts: dict[str, bool] = {}
            for row in record.rows:
                verdicts[row["perturbation"]] = verdicts.get(row["perturbation"], True) \
                    and bool(row["passed"])
            suites.append({
                "robustness_id": record.robustness_id, "corpus": record.corpus,
                "split": record.split, "reference": record.reference,
                "teacher_id": record.teacher_id, "clips": record.n_clips,
                "reused": record.reused, "written": record.written,
                "passed": sorted(p for p, ok in verdicts.items() if ok),
                "failed": sorted(p for p, ok in verdicts.items() if not ok)})
        return {"model": self.identity.model, "model_key": self.identity.model_key,
                "model_file": self.model_file, "run_id": self.identity.run_id,
                "student": self.identity.student, "suites": suites,
                "rows_written": sum(len(r.rows) for r in self.records if r.written),
                "notices": list(self.notices)}


class _Clips(Sequence):
    """Clip signals decoded from FLAC bytes on access (memory: the compressed bytes)."""

    def __init__(self, flac: list[bytes]) -> None:
        self._flac = flac

    def __len__(self) -> int:
        return len(self._flac)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [decode_flac(data) for data in self._flac[index]]
        return decode_flac(self._flac[index])


def subset(audio_ids: Sequence[str], *, max_clips: int | None, seed: int) -> list[str]:
    """At most ``max_clips`` ids, chosen by hashing (stable as clips are added), sorted.

    Examples:
        >>> subset(["c", "a", "b"], max_clips=None, seed=0)
        ['a', 'b', 'c']
        >>> len(subset([f"clip{i}" for i in range(10)], max_clips=4, seed=0))
        4
    """
    ids = sorted(set(audio_ids))
    if max_clips is None or len(ids) <= max_clips:
        return ids
    if max_clips < 1:
        raise RobustnessError(f"max_clips must be >= 1 (or None for every clip), got "
                              f"{max_clips}")
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return sorted(ranked[:max_clips])


def robustness_key(model: str, request: str) -> str:
    """The part key of a suite run: the model's name and what was asked (``request``)."""
    return content_key("robustness", model, request)


def run_robustness(
    lake: Lake,
    *,
    run_id: str | None = None,
    model: str | None = None,
    predictor: Predictor | None = None,
    corpora: Sequence[str] | None = None,
    split: str = "dev",
    split_name: str | None = None,
    reference: str = "teacher",
    teacher_id: str | None = None,
    perturbations: Sequence[str] | None = None,
    max_clips: int | None = DEFAULT_MAX_CLIPS,
    thresholds: Thresholds = SER_TESTS,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    n_resamples: int = DEFAULT_RESAMPLES,
    batch_size: int = BATCH_SIZE,
    threads: int = DEFAULT_THREADS,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    write: bool = True,
    settings: Settings | None = None,
) -> RobustnessRun:
    """Run the robustness suite for one model on one split of each corpus.

    Args:
        lake: The lake holding audio, splits and labels (rows are written there too).
        run_id: A training run (its best checkpoint).
        model: An ONNX file, a model folder or ``registry://name[@version][#int8|#fp32]``.
        predictor: Instead of ``run_id``/``model``: any evaluation
            :class:`~ser_pipeline.evaluate.Predictor`.
        corpora: Corpora (default the run's training corpora, else every corpus in
            ``splits``).
        split: Which split's clips (default ``dev``; ``all`` for a corpus without splits).
        split_name: Split definition when a corpus has several (default: the run's).
        reference: ``teacher`` (the model's teacher, or ``teacher_id``) or ``human``.
        teacher_id: The teacher whose labels are the reference.
        perturbations: Names in :data:`ser_pipeline.perturb.PERTURBATIONS` (default all).
        max_clips: Most clips per corpus (a seeded subset); None for every clip.
        thresholds: Pass/fail thresholds (default audEERING ser-tests').
        seed: Seed of the perturbations, the subset and the intervals.
        level: Confidence level of the intervals.
        n_resamples: Bootstrap resamples.
        batch_size: Most equal-length windows of one clip per model call.
        threads: ONNX Runtime intra-op threads.
        window_s: Window length for long clips (seconds), as in evaluation.
        overlap_s: Window overlap (seconds).
        write: Write the rows to ``robustness/`` (False: compute only, e.g. before a
            publish names the model; :func:`write_robustness` writes them later).
        settings: Settings (registry for ``registry://`` URIs).

    Returns:
        :class:`RobustnessRun`.

    Raises:
        EvaluateError: A bad model, corpus or split choice (as in ``ser evaluate``).
        RobustnessError: A bad reference or option, an ambiguous teacher, or no clip with
            a reference.
        PerturbationError: An unknown perturbation name.
    """
    settings = settings or get_settings()
    if reference not in REFERENCES:
        raise RobustnessError(f"unknown reference {reference!r}: use 'teacher' or 'human'")
    names = list(PERTURBATIONS) if perturbations is None else list(dict.fromkeys(perturbations))
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown or not names:
        raise PerturbationError(f"unknown perturbation(s) {', '.join(map(repr, unknown))}; "
                                f"choose from {', '.join(PERTURBATIONS)}")
    if predictor is None:
        predictor = load_predictor(lake, run_id=run_id, model=model, batch_size=batch_size,
                                   threads=threads, settings=settings)
    base = predictor.identity
    identity = replace(base, model_key=content_key(base.model_key, window_s, overlap_s))
    model_file = getattr(getattr(predictor, "model", None), "path", None)
    model_file = model_file.name if model_file is not None else None
    chosen = list(dict.fromkeys(corpora)) if corpora else list(identity.corpora) or sorted(
        lake.ids("splits", column="corpus"))
    if not chosen:
        raise EvaluateError(f"{identity.model} records no training corpora and the lake has "
                            "no splits; name the corpora with --corpus")
    selections, notices = select_clips(lake, corpora=chosen, splits=(split,),
                                       split_name=split_name or identity.split_name)
    if all(s.split != split for s in selections) and split != "all":
        notices.append(f"no {split!r} clips selected; corpora without splits are tested "
                       "whole as split 'all'")
    teacher = teacher_id or identity.teacher_id

    def predict_one(signal: np.ndarray) -> np.ndarray:
        values, _ = predict_clip(predictor.predict, signal, min_samples=predictor.min_samples,
                                 window_s=window_s, overlap_s=overlap_s,
                                 batch_size=predictor.batch_size)
        return values

    options = {"perturbations": names, "seed": seed, "level": level,
               "n_resamples": n_resamples, "thresholds": thresholds.to_dict(),
               "window_s": window_s, "overlap_s": overlap_s}
    records = []
    with progress_bar(f"robustness {identity.model}",
                      total=len(names) * len(selections)) as advance:
        for selection in selections:
            record = _run_selection(
                lake, predict_one, identity, selection, model_file=model_file,
                reference=reference, teacher=teacher, names=names, options=options,
                max_clips=max_clips, thresholds=thresholds, notices=notices, write=write,
                advance=advance)
            if record is not None:
                records.append(record)
    if not records:
        raise RobustnessError(f"no clip of {', '.join(chosen)} ({split}) has a {reference} "
                              "reference: " + "; ".join(notices))
    return RobustnessRun(identity, model_file, tuple(records), tuple(notices))


def _run_selection(lake: Lake, predict_one, identity: ModelIdentity, selection: Selection, *,
                   model_file: str | None, reference: str, teacher: str | None,
                   names: list[str], options: dict, max_clips: int | None,
                   thresholds: Thresholds, notices: list[str], write: bool,
                   advance) -> SuiteRecord | None:
    where = f"{selection.corpus}/{selection.split}"
    ids = subset(selection.audio_ids, max_clips=max_clips, seed=options["seed"])
    if len(ids) < len(selection.audio_ids):
        notices.append(f"{where}: {len(ids)} of {len(selection.audio_ids)} clips (a seeded "
                       f"subset; max_clips={max_clips})")
    refs = latest_references(lake, ids, teacher_id=teacher)
    keys = [k for k in refs if k[0] == reference]
    if reference == "teacher" and len(keys) > 1:
        raise RobustnessError(f"{where}: clips carry labels of several teachers "
                              f"({', '.join(sorted(str(k[1]) for k in keys))}) and the model "
                              "names none: choose one with --teacher")
    labels = refs[keys[0]] if keys else {}
    teacher_of_rows = keys[0][1] if reference == "teacher" and keys else teacher
    missing = [i for i in ids if i not in labels]
    if missing:
        notices.append(f"{where}: {len(missing)} clip(s) without a {reference} label left out")
    ids = [i for i in ids if i in labels]
    if not ids:
        advance(len(names))
        return None
    audio = lake.audio_for(ids, columns=["audio_id", "audio", "speaker"])
    found = dict(zip(audio.column("audio_id").to_pylist(),
                     zip(audio.column("audio").to_pylist(), audio.column("speaker").to_pylist(),
                         strict=True), strict=True))
    flac, speakers, kept = [], [], []
    for audio_id in ids:  # sorted: the order of the rows does not depend on the reader
        blob, speaker = found.get(audio_id, (None, None))
        try:
            usable = blob is not None and decode_flac(blob["bytes"]).size > 0
        except Exception:  # soundfile raises several types for corrupt bytes
            usable = False
        if usable:
            flac.append(blob["bytes"])
            speakers.append(speaker)
            kept.append(audio_id)
    if len(kept) < len(ids):
        notices.append(f"{where}: {len(ids) - len(kept)} clip(s) without usable audio left "
                       "out (missing, undecodable or empty; ser evaluate quarantines them)")
    if not kept:
        advance(len(names))
        return None
    reference_matrix = np.array([labels[i] for i in kept], dtype=np.float64)
    scored = "".join(f"{i}|{labels[i]!r}\n" for i in kept)
    request = content_key(identity.model_key, selection.corpus, selection.split,
                          selection.split_name, reference, teacher_of_rows,
                          sha256_bytes(scored.encode()), sorted(options.items()))
    key = robustness_key(identity.model, request)
    if f"robustness/part-{key}.parquet" in set(lake.parts("robustness")):
        rows = lake.read("robustness", filter=ds.field("robustness_id") == key).to_pylist()
        advance(len(names))
        return SuiteRecord(key, request, selection.corpus, selection.split,
                           selection.split_name, reference, teacher_of_rows, len(kept),
                           tuple(rows), reused=True, written=False)
    signals = _Clips(flac)
    stored = read_predictions(lake, identity.model_key, kept)
    clean = (np.array([[stored[i][d] for d in LABELS] for i in kept])
             if len(stored) == len(kept) else None)
    failures = {"n": 0}

    def predict(batch: list[np.ndarray]) -> np.ndarray:
        out = np.full((len(batch), len(LABELS)), np.nan)
        for index, signal in enumerate(batch):
            try:
                values = predict_one(signal)
            except Exception:  # noqa: BLE001 - one clip's failure; counted below
                failures["n"] += 1
                continue
            if np.isfinite(values).all():
                out[index] = values
            else:
                failures["n"] += 1
        return out

    report = robustness_suite(
        predict, signals, reference_matrix,
        speakers=speakers if any(s not in (None, "") for s in speakers) else None,
        perturbations=names, clean_predictions=clean, thresholds=thresholds,
        seed=options["seed"], level=options["level"], n_resamples=options["n_resamples"],
        progress=lambda result: advance(1, perturbation=result.perturbation))
    if failures["n"]:
        notices.append(f"{where}: the model failed or returned non-finite values on "
                       f"{failures['n']} clip prediction(s); those clips are left out of "
                       "the perturbation they failed on")
    now = utcnow()
    context = {"robustness_id": key, "model": identity.model,
               "model_key": identity.model_key, "model_format": identity.model_format,
               "model_file": model_file, "run_id": identity.run_id,
               "student": identity.student, "teacher_id": teacher_of_rows,
               "corpus": selection.corpus, "split": selection.split,
               "split_name": selection.split_name, "reference": reference,
               "evaluated_at": now}
    rows = tuple(context | row for row in report.rows())
    unknown = set(rows[0]) - set(ROBUSTNESS.names) if rows else set()
    if unknown:  # a column the table lacks would be dropped silently by the cast
        raise RobustnessError(f"robustness rows carry columns the schema lacks: {unknown}")
    written = bool(write and lake.write_part("robustness", list(rows), key=key))
    return SuiteRecord(key, request, selection.corpus, selection.split, selection.split_name,
                       reference, teacher_of_rows, report.n_clips, rows, reused=False,
                       written=written)


def write_robustness(lake: Lake, run: RobustnessRun, *, model: str | None = None
                     ) -> RobustnessRun:
    """Write a run's rows (as ``model``, e.g. ``name@version`` once published).

    The part key is the one ``run_robustness`` gives the same request under that name,
    so running the suite again on the published model finds these rows. Returns the run as
    written (keys, ``written`` per suite).
    """
    name = model or run.identity.model
    identity = replace(run.identity, model=name)
    records = []
    for record in run.records:
        key = robustness_key(name, record.request)
        rows = tuple(row | {"model": name, "robustness_id": key} for row in record.rows)
        written = lake.write_part("robustness", list(rows), key=key)
        records.append(replace(record, robustness_id=key, rows=rows, written=written))
    return RobustnessRun(identity, run.model_file, tuple(records), run.notices)


# -- publishing: the suite on the file a new version will serve ------------------------------
def manifest_sections(run: RobustnessRun) -> list[Any]:
    """The run as the manifest's typed ``robustness`` sections (one per suite run)."""
    from ser_pipeline.registry.manifest import (
        RobustnessCheck,
        RobustnessFigure,
        RobustnessSection,
    )

    figure_fields = set(RobustnessFigure.model_fields)
    sections = []
    for record in run.records:
        checks: dict[str, list[dict[str, Any]]] = {}
        for row in record.rows:
            checks.setdefault(row["perturbation"], []).append(row)
        first = record.rows[0]
        sections.append(RobustnessSection(
            file=run.model_file, corpus=record.corpus, split=record.split,
            reference=record.reference, teacher_id=record.teacher_id, n_clips=record.n_clips,
            max_ccc_drop=first["max_ccc_drop"], min_unchanged_share=first["min_unchanged_share"],
            ci_level=first["ci_level"], ci_method=first["ci_method"], ci_unit=first["ci_unit"],
            ci_units=first["ci_units"], ci_resamples=first["ci_resamples"],
            perturbation_seed=first["perturbation_seed"],
            perturbations=[RobustnessCheck(
                perturbation=name, description=rows[0]["description"],
                passed=all(r["passed"] for r in rows),
                dimensions=[RobustnessFigure(**{k: r[k] for k in figure_fields})
                            for r in rows]) for name, rows in checks.items()]))
    return sections


def robustness_of_export(lake: Lake, export: Any, *, settings: Settings | None = None,
                         **options: Any) -> RobustnessRun:
    """The suite on the file ``export`` will serve once published, on the dev clips of
    the run's training corpora against its teacher; nothing is written (the version has
    no name yet: :func:`write_robustness` after the publish)."""
    from ser_pipeline.evaluate import OnnxPredictor
    from ser_pipeline.registry.manifest import serving_for

    run = export.run
    if run is None:
        raise RobustnessError("this export has no training run: nothing to test against")
    served = serving_for(export).default_file
    try:
        predictor = OnnxPredictor(export.files[served].path)
        return run_robustness(lake, predictor=predictor,
                              corpora=run.training.corpora or None,
                              split_name=run.training.split_name,
                              teacher_id=run.provenance.teacher_id, write=False,
                              settings=settings, **options)
    except EvaluateError as error:
        raise RobustnessError(f"robustness suite before publishing run "
                              f"{run.provenance.run_id}: {error}") from None


def publish_with_robustness(registry: Any, export: Any, lake: Lake, *, name: str,
                            version: int | None = None, gate: Any = None,
                            **options: Any) -> Any:
    """Publish ``export`` with its robustness results: the suite runs on the file the
    version will serve (:func:`robustness_of_export`), the manifest and model card carry
    the results, and the rows land in ``robustness/`` under ``name@version``.

    Args:
        registry: The :class:`ser_pipeline.registry.Registry` to publish to.
        export: The export (or its folder).
        lake: The lake with the run's dev clips and teacher labels.
        name: Model name.
        version: Explicit version (default the next free one).
        gate: The no-regression gate's decision (``GateRecord``): ``latest`` moves only
            when it says so (:meth:`Registry.publish`).
        **options: Options of :func:`run_robustness` (``n_resamples``, ``max_clips``...).

    Returns:
        The manifest as written (the caller records it in the DuckDB ``models`` table).
    """
    from ser_pipeline.export import load_export

    if not hasattr(export, "files"):
        export = load_export(export)
    checked = robustness_of_export(lake, export, settings=registry.settings, **options)
    manifest = registry.publish(export, name=name, version=version, record_db=False,
                                robustness=manifest_sections(checked), gate=gate)
    write_robustness(lake, checked, model=f"{manifest.name}@{manifest.version}")
    return manifest
