"""One suite run: the clips of one corpus and split, their references and audio, the
suite on them (or the rows already in the lake), the rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.audio import decode_flac
from ser_pipeline.evaluate import ModelIdentity, Selection, latest_references, read_predictions
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.robustness import Thresholds, robustness_suite
from ser_pipeline.robustness_stage.errors import RobustnessError
from ser_pipeline.robustness_stage.records import SuiteRecord
from ser_pipeline.schemas import LABELS, ROBUSTNESS


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
