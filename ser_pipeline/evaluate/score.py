"""Scoring stored predictions against the selected references: ``metrics`` rows with
bootstrap intervals, per-speaker means and fairness slices.

For each (corpus, split, reference, teacher) group of scored clips:

* **global** rows (``aggregation='global'``), one per dimension: CCC, Pearson r and MAE
  over all clips (``metrics.dimension_metrics``, the paper's figure), each with a 95 %
  percentile bootstrap interval (:func:`ser_pipeline.stats.bootstrap_metrics`, 1,000
  resamples, seed 0). Speakers are resampled where ``audio.speaker`` is known for the
  scored clips (a clip without one is a unit of its own), clips otherwise; ``ci_unit`` and
  ``ci_units`` say which and how many;
* **speaker_mean** rows (``aggregation='speaker_mean'``) where speakers are known: the mean
  of per-speaker CCCs with its interval over speakers
  (:func:`ser_pipeline.stats.per_speaker_ccc`); Pearson r and MAE are NULL there;
* **fairness** rows where ``audio.gender`` is known for the scored clips
  (:func:`ser_pipeline.stats.fairness_slices`): CCC per group with intervals and the
  largest gap with its interval, in the ``fairness`` table.

The three land in one part each, under the group's ``eval_id``, which hashes the model
key, the selection, every (clip, speaker, gender, prediction, reference) scored and the
bootstrap options: the same evaluation writes nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.evaluate.predictors import ModelIdentity
from ser_pipeline.evaluate.selection import ClipMetadata, References, Selection
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    FairnessSlices,
    StatsError,
    bootstrap_metrics,
    fairness_slices,
    per_speaker_ccc,
)

GLOBAL, SPEAKER_MEAN = "global", "speaker_mean"
#: The attribute fairness slices are cut on (a column of ``audio``).
FAIRNESS_ATTRIBUTE = "gender"
#: Bumped when the rows an evaluation writes change shape, so re-evaluating the same data
#: with newer code writes the new rows (the old part's key would otherwise match).
ROW_FORMAT = "metrics-intervals-1"


@dataclass(frozen=True)
class Bootstrap:
    """The bootstrap options every interval of an evaluation uses (the defaults of
    :mod:`ser_pipeline.stats`: 95 %, 1,000 resamples, seed 0)."""

    level: float = DEFAULT_LEVEL
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED


@dataclass
class SelectionScore:
    """What scoring one selection produced.

    Attributes:
        metric_rows: Every ``metrics`` row (global and speaker_mean) for every reference.
        fairness_rows: Every ``fairness`` row.
        fairness: The slices per (reference, teacher), as computed (also when unavailable).
        written: Metric rows this call wrote (0 when the same evaluation was stored).
    """

    metric_rows: list[dict] = field(default_factory=list)
    fairness_rows: list[dict] = field(default_factory=list)
    fairness: list[tuple[str, str | None, FairnessSlices]] = field(default_factory=list)
    written: int = 0


def read_predictions(lake: Lake, model_key: str, ids: list[str]) -> dict[str, dict]:
    """Stored predictions of ``model_key`` for ``ids``; the earliest row of each clip wins
    (a prediction never changes once scored)."""
    if not ids:
        return {}
    rows = lake.read(
        "predictions",
        columns=["audio_id", "arousal", "dominance", "valence", "predicted_at"],
        filter=(ds.field("model_key") == model_key) & ds.field("audio_id").isin(ids),
    ).to_pylist()
    rows.sort(key=lambda r: r["arousal"], reverse=True)
    rows.sort(key=lambda r: r["predicted_at"])
    earliest: dict[str, dict] = {}
    for row in rows:
        earliest.setdefault(row["audio_id"], row)
    return earliest


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _interval_columns(level: float, method: str, unit: str, units: int,
                      resamples: int) -> dict[str, Any]:
    return {"ci_level": level, "ci_method": method, "ci_unit": unit, "ci_units": units,
            "ci_resamples": resamples}


def score_selection(lake: Lake, identity: ModelIdentity, selection: Selection, *,
                    predictions: dict[str, dict], references: References,
                    metadata: ClipMetadata, evaluated_at: Any,
                    bootstrap: Bootstrap = Bootstrap()) -> SelectionScore:
    """Metric rows (with intervals) and fairness rows for one selection and every
    reference; writes them (one ``metrics`` and one ``fairness`` part per reference)."""
    out = SelectionScore()
    for (reference, teacher), labels in sorted(references.items(),
                                               key=lambda kv: (kv[0][0], kv[0][1] or "")):
        ids = [i for i in selection.audio_ids if i in predictions and i in labels]
        if not ids:
            continue
        pred = np.array([[predictions[i][d] for d in LABELS] for i in ids])
        ref = np.array([labels[i] for i in ids], dtype=np.float64)
        speakers = metadata.speakers_of(ids)
        genders = metadata.genders_of(ids)
        scored = "".join(
            f"{audio_id}|{metadata.speaker.get(audio_id)}|{metadata.gender.get(audio_id)}|"
            f"{p!r}|{r!r}\n"
            for audio_id, p, r in zip(ids, pred.tolist(), ref.tolist(), strict=True))
        eval_id = content_key("metrics", identity.model_key, selection.corpus, selection.split,
                              selection.split_name, reference, teacher,
                              sha256_bytes(scored.encode()), ROW_FORMAT, bootstrap.level,
                              bootstrap.n_resamples, bootstrap.seed)
        common = {
            "eval_id": eval_id, "model": identity.model, "model_key": identity.model_key,
            "model_format": identity.model_format, "run_id": identity.run_id,
            "student": identity.student, "teacher_id": teacher, "corpus": selection.corpus,
            "split": selection.split, "split_name": selection.split_name,
            "reference": reference, "model_params": identity.params,
            "model_bytes": identity.size_bytes, "evaluated_at": evaluated_at,
        }
        options = {"level": bootstrap.level, "n_resamples": bootstrap.n_resamples,
                   "seed": bootstrap.seed}
        rows = _global_rows(pred, ref, speakers, common, options)
        rows += _speaker_mean_rows(pred, ref, speakers, common, options)
        out.written += len(rows) if lake.write_part("metrics", rows, key=eval_id) else 0
        out.metric_rows.extend(rows)
        slices = _fairness(pred, ref, genders, speakers, options)
        out.fairness.append((reference, teacher, slices))
        fairness = _fairness_rows(slices, common)
        lake.write_part("fairness", fairness, key=content_key("fairness", eval_id))
        out.fairness_rows.extend(fairness)
    return out


def _global_rows(pred: np.ndarray, ref: np.ndarray, speakers: list | None,
                 common: dict[str, Any], options: dict[str, Any]) -> list[dict]:
    result = bootstrap_metrics(pred, ref, units=speakers, **options)
    r = result.resampling
    ci = _interval_columns(r.level, r.method, r.unit, r.n_units, r.n_resamples)
    rows = []
    for entry in result.dimensions:
        rows.append({
            **common, "aggregation": GLOBAL, "dimension": entry.dimension, "n": entry.n,
            "ccc": _finite(entry.ccc.value), "ccc_lo": _finite(entry.ccc.lo),
            "ccc_hi": _finite(entry.ccc.hi), "pearson": _finite(entry.pearson.value),
            "pearson_lo": _finite(entry.pearson.lo), "pearson_hi": _finite(entry.pearson.hi),
            "mae": _finite(entry.mae.value), "mae_lo": _finite(entry.mae.lo),
            "mae_hi": _finite(entry.mae.hi), **ci})
    return rows


def _speaker_mean_rows(pred: np.ndarray, ref: np.ndarray, speakers: list | None,
                       common: dict[str, Any], options: dict[str, Any]) -> list[dict]:
    """Mean per-speaker CCC rows; none when no scored clip has a speaker id."""
    if speakers is None:
        return []
    result = per_speaker_ccc(pred, ref, speakers, **options)
    if not result.available or result.resampling is None:
        return []
    r = result.resampling
    ci = _interval_columns(r.level, r.method, r.unit, r.n_units, r.n_resamples)
    clips = len(pred) - result.clips_without_speaker
    return [{**common, "aggregation": SPEAKER_MEAN, "dimension": entry.dimension, "n": clips,
             "ccc": _finite(entry.mean_ccc.value), "ccc_lo": _finite(entry.mean_ccc.lo),
             "ccc_hi": _finite(entry.mean_ccc.hi), **ci}
            for entry in result.dimensions]


def _fairness(pred: np.ndarray, ref: np.ndarray, genders: list | None,
              speakers: list | None, options: dict[str, Any]) -> FairnessSlices:
    try:
        return fairness_slices(pred, ref, genders, attribute=FAIRNESS_ATTRIBUTE,
                               units=speakers, **options)
    except StatsError as error:  # e.g. one speaker in two groups: say so, score the rest
        return FairnessSlices(FAIRNESS_ATTRIBUTE, False, f"not sliced: {error}", None, (), (),
                              len(pred))


def _fairness_rows(slices: FairnessSlices, common: dict[str, Any]) -> list[dict]:
    if not slices.available or slices.resampling is None:
        return []
    r = slices.resampling
    base = {k: v for k, v in common.items() if k not in ("model_format", "model_params",
                                                          "model_bytes")}
    ci = {"ci_level": r.level, "ci_method": r.method, "ci_unit": r.unit,
          "ci_resamples": r.n_resamples}
    rows = []
    by_group = {s.group: s for s in slices.slices}
    for group in slices.slices:
        for dimension, estimate in zip(LABELS, group.ccc, strict=True):
            rows.append({**base, **ci, "attribute": slices.attribute, "kind": "group",
                         "group_value": group.group, "dimension": dimension,
                         "ccc": _finite(estimate.value), "ccc_lo": _finite(estimate.lo),
                         "ccc_hi": _finite(estimate.hi), "n": group.n_clips,
                         "ci_units": group.n_units})
    for gap in slices.gaps:
        best, worst = by_group[gap.best_group], by_group[gap.worst_group]
        rows.append({**base, **ci, "attribute": slices.attribute, "kind": "gap",
                     "best_group": gap.best_group, "worst_group": gap.worst_group,
                     "dimension": gap.dimension, "ccc": _finite(gap.gap.value),
                     "ccc_lo": _finite(gap.gap.lo), "ccc_hi": _finite(gap.gap.hi),
                     "n": best.n_clips + worst.n_clips,
                     "ci_units": min(best.n_units, worst.n_units)})
    return rows


def results_table(metric_rows: list[dict]) -> list[dict]:
    """Wide rows, one per corpus/split/reference/teacher: the global CCC per dimension
    with its interval (``ccc_<dim>``, ``ccc_<dim>_lo``, ``ccc_<dim>_hi``) and their mean
    (``ccc_mean``), the resampling (``ci_level``, ``ci_unit``, ``ci_units``) and, where
    speakers are known, the mean per-speaker CCC the same way (``speaker_ccc_<dim>``...,
    ``speaker_ccc_mean``, ``speakers``; None otherwise)."""
    table: dict[tuple, dict] = {}
    for row in metric_rows:
        key = (row["corpus"], row["split"], row["reference"], row["teacher_id"])
        entry = table.setdefault(key, {
            "corpus": key[0], "split": key[1], "reference": key[2], "teacher_id": key[3],
            "n": 0, "ci_level": None, "ci_unit": None, "ci_units": None, "speakers": None})
        prefix = "ccc" if row.get("aggregation", GLOBAL) == GLOBAL else "speaker_ccc"
        dimension = row["dimension"]
        entry[f"{prefix}_{dimension}"] = row["ccc"]
        entry[f"{prefix}_{dimension}_lo"] = row.get("ccc_lo")
        entry[f"{prefix}_{dimension}_hi"] = row.get("ccc_hi")
        if prefix == "ccc":
            entry["n"] = max(entry["n"], row["n"])
            entry.update(ci_level=row.get("ci_level"), ci_unit=row.get("ci_unit"),
                         ci_units=row.get("ci_units"))
        else:
            entry["speakers"] = row.get("ci_units")
    for entry in table.values():
        for prefix in ("ccc", "speaker_ccc"):
            for d in LABELS:
                for suffix in ("", "_lo", "_hi"):
                    entry.setdefault(f"{prefix}_{d}{suffix}", None)
            values = [entry[f"{prefix}_{d}"] for d in LABELS]
            entry[f"{prefix}_mean"] = (float(np.mean(values))
                                       if all(v is not None for v in values) else None)
    return list(table.values())


def fairness_table(scores: list[tuple[Any, SelectionScore]]) -> list[dict]:
    """One entry per (corpus, split, reference, teacher) with slices: the groups' CCC with
    intervals and the largest gap per dimension (``scores``: (selection, score) pairs)."""
    out = []
    for selection, score in scores:
        for reference, teacher, slices in score.fairness:
            if not slices.available:
                continue
            out.append({
                "corpus": selection.corpus, "split": selection.split,
                "reference": reference, "teacher_id": teacher,
                "attribute": slices.attribute, "note": slices.reason or None,
                "unit": slices.resampling.unit if slices.resampling else None,
                "clips_without_group": slices.clips_without_group,
                "groups": [{"group": g.group, "n": g.n_clips, "units": g.n_units,
                            **{f"ccc_{d}{s}": _finite(getattr(e, attr))
                               for d, e in zip(LABELS, g.ccc, strict=True)
                               for s, attr in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))}}
                           for g in slices.slices],
                "gaps": [{"dimension": gap.dimension, "best_group": gap.best_group,
                          "worst_group": gap.worst_group, "gap": _finite(gap.gap.value),
                          "gap_lo": _finite(gap.gap.lo), "gap_hi": _finite(gap.gap.hi)}
                         for gap in slices.gaps],
            })
    return out
