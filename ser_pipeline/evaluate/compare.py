"""Paired comparison of two models on the same clips: ``ser compare`` and the publish gate.

Both models predict the same clips of a corpus and split (predictions already stored in
the lake are reused, missing ones are predicted and stored, as ``ser evaluate`` does), and
:func:`ser_pipeline.stats.compare_models` bootstraps ΔCCC = CCC(A) − CCC(B) with the same
resampled speakers (or clips) for both models. Each comparison is stored as rows of the
``comparisons`` lake table (one per dimension and one for the mean of the three), under a
key that hashes both model keys and the exact data compared, so comparing again writes
nothing; ``ser db build`` materialises the table and ``ser report model_comparison``
reads it.

Examples:
    >>> import tempfile
    >>> from ser_pipeline.lake import Lake
    >>> compare(Lake.open(tempfile.mkdtemp()), "no-such-run", "registry://x")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ser_pipeline.evaluate.errors.EvaluateError: model 'no-such-run' is neither a training...
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.evaluate.predictors import ModelIdentity, Predictor, load_predictor
from ser_pipeline.evaluate.selection import (
    Selection,
    clip_metadata,
    latest_references,
    select_clips,
)
from ser_pipeline.evaluate.stage import predict_missing, windowed
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.onnx_model import BATCH_SIZE, DEFAULT_THREADS
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedComparison,
    compare_models,
)

REFERENCES = ("teacher", "human")
#: Why a comparison was made (the ``purpose`` column).
COMPARE, GATE = "compare", "gate"


@dataclass(frozen=True)
class PairedData:
    """Two models' predictions and the references on the same clips of one selection.

    Attributes:
        selection: The corpus and split the clips come from.
        reference: ``teacher`` or ``human``.
        teacher_id: The teacher whose labels are the reference (human: the teacher asked
            for, as metrics rows record it).
        audio_ids: The clips both models predicted and the reference covers, sorted.
        a: Model A's predictions ``[n, 3]``.
        b: Model B's predictions ``[n, 3]``.
        references: ``[n, 3]``.
        speakers: ``audio.speaker`` per clip, or None when no clip has one.
    """

    selection: Selection
    reference: str
    teacher_id: str | None
    audio_ids: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    references: np.ndarray
    speakers: list[str | None] | None


@dataclass(frozen=True)
class ModelComparison:
    """One stored comparison: A against B on one corpus/split/reference.

    Attributes:
        comparison_id: Key of its ``comparisons`` part.
        purpose: ``compare`` (``ser compare``) or ``gate`` (the publish gate).
        model_a: A's identity (windowed model key).
        model_b: B's identity.
        corpus: Corpus compared on.
        split: Split compared on.
        split_name: Split definition.
        reference: ``teacher`` or ``human``.
        teacher_id: The reference teacher.
        comparison: ΔCCC = CCC(A) − CCC(B) per dimension and overall, with verdicts.
        written: Whether this call stored it (False: the same comparison was stored).
    """

    comparison_id: str
    purpose: str
    model_a: ModelIdentity
    model_b: ModelIdentity
    corpus: str
    split: str
    split_name: str | None
    reference: str
    teacher_id: str | None
    comparison: PairedComparison
    written: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON types: the context, then the comparison (NaN as None)."""
        return {"comparison_id": self.comparison_id, "purpose": self.purpose,
                "model_a": self.model_a.model, "model_a_key": self.model_a.model_key,
                "model_b": self.model_b.model, "model_b_key": self.model_b.model_key,
                "corpus": self.corpus, "split": self.split, "split_name": self.split_name,
                "reference": self.reference, "teacher_id": self.teacher_id,
                "written": self.written, **self.comparison.to_dict()}

    def rows(self, compared_at: Any) -> list[dict[str, Any]]:
        """The ``comparisons`` rows: one per dimension and one for the mean."""
        r = self.comparison.resampling
        out = []
        for entry in (*self.comparison.dimensions, self.comparison.overall):
            out.append({
                "comparison_id": self.comparison_id, "purpose": self.purpose,
                "model_a": self.model_a.model, "model_a_key": self.model_a.model_key,
                "model_b": self.model_b.model, "model_b_key": self.model_b.model_key,
                "corpus": self.corpus, "split": self.split, "split_name": self.split_name,
                "reference": self.reference, "teacher_id": self.teacher_id,
                "dimension": entry.dimension, "n": entry.n,
                "ccc_a": _finite(entry.ccc_candidate), "ccc_b": _finite(entry.ccc_baseline),
                "delta": _finite(entry.delta.value), "delta_lo": _finite(entry.delta.lo),
                "delta_hi": _finite(entry.delta.hi), "verdict": entry.verdict,
                "ci_level": r.level, "ci_method": r.method, "ci_unit": r.unit,
                "ci_units": r.n_units, "ci_resamples": r.n_resamples,
                "compared_at": compared_at})
        return out


@dataclass
class ComparisonReport:
    """What :func:`compare` returns: one comparison per selection, and notices."""

    comparisons: list[ModelComparison] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"comparisons": [c.to_dict() for c in self.comparisons],
                "notices": list(self.notices)}


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def predictor_for(lake: Lake, spec: str | Predictor, *, batch_size: int = BATCH_SIZE,
                  threads: int = DEFAULT_THREADS,
                  settings: Settings | None = None) -> Predictor:
    """A predictor for a run id, an ONNX file or model folder, or a ``registry://`` URI.

    Raises:
        EvaluateError: ``spec`` is none of these (the message says which were tried).
    """
    if not isinstance(spec, str):
        return spec
    path = Path(spec.partition("#")[0])
    if spec.startswith("registry://") or path.is_file() or path.is_dir():
        return load_predictor(lake, model=spec, batch_size=batch_size, threads=threads,
                              settings=settings)
    from ser_pipeline.runs import run_path

    try:
        is_run = lake.storage.exists(run_path(spec, "run.json"))
    except ValueError:  # not a name a run can have
        is_run = False
    if is_run:
        return load_predictor(lake, run_id=spec, batch_size=batch_size, settings=settings)
    raise EvaluateError(f"model {spec!r} is neither a training run in runs/ of the lake, an "
                        "existing ONNX file or model folder, nor a registry://NAME[@VERSION] "
                        "URI")


def paired_data(lake: Lake, a: Predictor, b: Predictor, *, corpora: Sequence[str],
                split: str = "dev", split_name: str | None = None,
                reference: str = "teacher", teacher_id: str | None = None,
                window_s: float = 10.0, overlap_s: float = 2.0,
                executor: Executor | None = None,
                settings: Settings | None = None) -> tuple[list[PairedData], list[str]]:
    """Both models' predictions and the references on the same clips, per corpus.

    Missing predictions are predicted and stored first (reused ever after). The teacher
    defaults to A's, then B's. Clips either model could not predict (quarantined) or that
    the reference does not cover are left out of both.

    Returns:
        ``(paired, notices)``: one :class:`PairedData` per corpus with clips.

    Raises:
        EvaluateError: unknown reference, no teacher known for a teacher reference, an
            unknown corpus, or a model that fails on every clip.
    """
    if reference not in REFERENCES:
        raise EvaluateError(f"unknown reference {reference!r}: use teacher or human")
    id_a = windowed(a, window_s=window_s, overlap_s=overlap_s)
    id_b = windowed(b, window_s=window_s, overlap_s=overlap_s)
    teacher = teacher_id or id_a.teacher_id or id_b.teacher_id
    if reference == "teacher" and teacher is None:
        raise EvaluateError(f"neither {id_a.model} nor {id_b.model} records its teacher: "
                            "name the reference teacher with --teacher")
    selections, notices = select_clips(lake, corpora=list(dict.fromkeys(corpora)),
                                       splits=[split],
                                       split_name=split_name or id_a.split_name
                                       or id_b.split_name)
    corpus_of = {i: s.corpus for s in selections for i in s.audio_ids}
    if not corpus_of:
        raise EvaluateError(f"no {split!r} clips in {', '.join(corpora)}: "
                            + "; ".join(notices))
    options = {"window_s": window_s, "overlap_s": overlap_s, "executor": executor,
               "settings": settings}
    pred_a = predict_missing(lake, a, corpus_of, **options).predictions
    pred_b = predict_missing(lake, b, corpus_of, **options).predictions
    ids = sorted(corpus_of)
    labels = latest_references(lake, ids, teacher_id=teacher).get((reference, teacher), {})
    metadata = clip_metadata(lake, ids)
    paired = []
    for selection in selections:
        chosen = tuple(i for i in selection.audio_ids
                       if i in pred_a and i in pred_b and i in labels)
        if not chosen:
            notices.append(f"corpus {selection.corpus!r} split {selection.split!r}: no clip "
                           f"has predictions from both models and a {reference} label"
                           + (f" from {teacher}" if reference == "teacher" else "")
                           + ": not compared")
            continue
        paired.append(PairedData(
            selection=selection, reference=reference, teacher_id=teacher, audio_ids=chosen,
            a=np.array([[pred_a[i][d] for d in LABELS] for i in chosen]),
            b=np.array([[pred_b[i][d] for d in LABELS] for i in chosen]),
            references=np.array([labels[i] for i in chosen], dtype=np.float64),
            speakers=metadata.speakers_of(chosen)))
    return paired, notices


def compare_paired(lake: Lake, data: PairedData, a: ModelIdentity, b: ModelIdentity, *,
                   purpose: str = COMPARE, level: float = DEFAULT_LEVEL,
                   n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED) -> ModelComparison:
    """Bootstrap ΔCCC of A against B on ``data`` and store it in ``comparisons``."""
    result = compare_models(data.a, data.b, data.references, units=data.speakers,
                            candidate_name=a.model, baseline_name=b.model, level=level,
                            n_resamples=n_resamples, seed=seed)
    return store_comparison(lake, data, a, b, result, purpose=purpose)


def store_comparison(lake: Lake, data: PairedData, a: ModelIdentity, b: ModelIdentity,
                     result: PairedComparison, *, purpose: str = COMPARE) -> ModelComparison:
    """Store ``result`` (a paired comparison of A and B on ``data``) in ``comparisons``
    under a key hashing both models, the data and the bootstrap options."""
    r = result.resampling
    level, n_resamples, seed = r.level, r.n_resamples, r.seed
    scored = "".join(f"{i}|{s}|{pa!r}|{pb!r}|{r!r}\n" for i, s, pa, pb, r in zip(
        data.audio_ids, data.speakers or [None] * len(data.audio_ids), data.a.tolist(),
        data.b.tolist(), data.references.tolist(), strict=True))
    selection = data.selection
    comparison_id = content_key("comparison", purpose, a.model_key, b.model_key,
                                selection.corpus, selection.split, selection.split_name,
                                data.reference, data.teacher_id,
                                sha256_bytes(scored.encode()), level, n_resamples, seed)
    stored = ModelComparison(comparison_id, purpose, a, b, selection.corpus, selection.split,
                             selection.split_name, data.reference, data.teacher_id, result,
                             written=False)
    written = lake.write_part("comparisons", stored.rows(utcnow()), key=comparison_id)
    return replace(stored, written=written)


def compare(lake: Lake, a: str | Predictor, b: str | Predictor, *,
            corpora: Sequence[str] | None = None, split: str = "dev",
            split_name: str | None = None, reference: str = "teacher",
            teacher_id: str | None = None, purpose: str = COMPARE,
            level: float = DEFAULT_LEVEL, n_resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED, batch_size: int = BATCH_SIZE,
            threads: int = DEFAULT_THREADS, window_s: float = 10.0, overlap_s: float = 2.0,
            executor: Executor | None = None,
            settings: Settings | None = None) -> ComparisonReport:
    """Compare model A with model B on the same clips: ΔCCC = CCC(A) − CCC(B) per
    dimension with a paired bootstrap interval and a verdict (better / worse / not
    distinguishable), for each corpus; stored in ``comparisons``.

    Args:
        lake: The lake (clips, labels, speakers; predictions and comparisons are written).
        a: Run id, ONNX file or folder, ``registry://`` URI, or a :class:`Predictor`.
        b: The same, for the model A is compared with.
        corpora: Corpora to compare on (default A's training corpora, else B's).
        split: The split (default ``dev``).
        split_name: Split definition when a corpus has several.
        reference: ``teacher`` (default) or ``human``.
        teacher_id: Reference teacher (default A's teacher, else B's).
        purpose: ``compare`` or ``gate`` (recorded in each row).
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.
        batch_size: Most windows of one clip per model call.
        threads: ONNX Runtime threads per session.
        window_s: Window length for long clips (as ``ser evaluate``).
        overlap_s: Window overlap.
        executor: Runs the prediction shards.
        settings: Settings; default from the environment.

    Raises:
        EvaluateError: A or B cannot be loaded, no corpus is known, or no clips.
    """
    settings = settings or get_settings()
    model_a = predictor_for(lake, a, batch_size=batch_size, threads=threads,
                            settings=settings)
    model_b = predictor_for(lake, b, batch_size=batch_size, threads=threads,
                            settings=settings)
    chosen = list(corpora or model_a.identity.corpora or model_b.identity.corpora)
    if not chosen:
        raise EvaluateError(f"neither {model_a.identity.model} nor {model_b.identity.model} "
                            "records its training corpora: name them with --corpus")
    paired, notices = paired_data(lake, model_a, model_b, corpora=chosen, split=split,
                                  split_name=split_name, reference=reference,
                                  teacher_id=teacher_id, window_s=window_s,
                                  overlap_s=overlap_s, executor=executor, settings=settings)
    report = ComparisonReport(notices=notices)
    for data in paired:
        report.comparisons.append(compare_paired(
            lake, data, model_a.identity, model_b.identity, purpose=purpose, level=level,
            n_resamples=n_resamples, seed=seed))
    if not report.comparisons:
        raise EvaluateError("nothing to compare: " + "; ".join(notices))
    return report
