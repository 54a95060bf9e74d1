"""What an export reads from the lake: clips to calibrate and check on, and the run's CCC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_pipeline.export.result import CccRow
from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS, SAMPLE_RATE

#: Calibration and parity clips are cropped to this length (keeps export fast; the
#: statistics of a 6 s crop are those of the clip).
MAX_CLIP_S = 6.0


def lake_clips(lake: Lake, *, split: str | None, limit: int, split_name: str | None = None,
               exclude: set[str] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Up to ``limit`` decoded clips (cropped to MAX_CLIP_S), deterministic order.

    ``split=None`` takes any clip in the audio table.
    """
    import pyarrow.dataset as ds

    if split is not None:
        condition = ds.field("split") == split
        if split_name:
            condition = condition & (ds.field("split_name") == split_name)
        ids = sorted(lake.ids("splits", filter=condition))
    else:
        ids = sorted(lake.ids("audio"))
    return _decoded(lake, [i for i in ids if i not in (exclude or set())][:limit])


#: Perturbations whose seeded copies join calibration: the level and channel changes that
#: push activations outside the range clean training clips span (docs/stages/export.md).
CALIBRATION_PERTURBATIONS = ("gain_minus20db", "noise_snr10db", "gain_plus6db_clipped",
                             "telephone")


@dataclass(frozen=True)
class ClipSet:
    """Clips an export reads: ids, decoded signals (perturbed copies after the originals),
    the corpora they come from, and how many copies are perturbed."""

    ids: list[str]
    signals: list[np.ndarray]
    corpora: list[str]
    perturbed: int = 0
    perturbations: tuple[str, ...] = ()


def clips_across_corpora(lake: Lake, *, split: str, limit: int, split_name: str | None = None,
                         exclude: set[str] | None = None) -> ClipSet:
    """Up to ``limit`` clips taken in turn from every corpus in the lake (cropped to
    MAX_CLIP_S, deterministic order).

    A corpus with rows in ``splits`` (of ``split_name`` when given) gives clips of
    ``split``; one without (a corpus ingested for labeling only, in another style) gives
    any of its clips, so parity and calibration see every kind of audio the lake holds,
    not only the training corpora.

    Examples:
        >>> import tempfile
        >>> clips_across_corpora(Lake.open(tempfile.mkdtemp()), split="dev", limit=4).ids
        []
    """
    import itertools

    import pyarrow.dataset as ds

    exclude = exclude or set()
    by_corpus: dict[str, list[str]] = {}
    if lake.parts("splits"):
        condition = ds.field("split_name") == split_name if split_name else None
        rows = lake.read("splits", columns=["audio_id", "corpus", "split"],
                         filter=condition).to_pylist()
        for row in rows:
            ids = by_corpus.setdefault(row["corpus"] or "", [])
            if row["split"] == split:
                ids.append(row["audio_id"])
    unsplit: dict[str, list[str]] = {}
    if lake.parts("audio"):
        for row in lake.read("audio", columns=["audio_id", "corpus"]).to_pylist():
            if (row["corpus"] or "") not in by_corpus:
                unsplit.setdefault(row["corpus"] or "", []).append(row["audio_id"])
    pools = {corpus: sorted(set(ids) - exclude)
             for corpus, ids in sorted({**by_corpus, **unsplit}.items())}
    order = [i for i in itertools.chain.from_iterable(itertools.zip_longest(*pools.values()))
             if i is not None][:limit]
    corpus_of = {i: corpus for corpus, ids in pools.items() for i in ids}
    ids, signals = _decoded(lake, order)
    return ClipSet(ids=ids, signals=signals, corpora=sorted({corpus_of[i] for i in ids}))


def with_perturbed(clips: ClipSet, names: Sequence[str], *, seed: int = 0) -> ClipSet:
    """The clips, then one seeded perturbed copy of each (the perturbations in turn).

    Examples:
        >>> clip = np.sin(np.arange(1600, dtype=np.float32) / 9)
        >>> both = with_perturbed(ClipSet(["a"], [clip], ["c"]), ["gain_minus20db"])
        >>> len(both.signals), both.perturbed, round(float(both.signals[1].max()), 2)
        (2, 1, 0.1)
    """
    from ser_pipeline.perturb import perturb

    copies = [perturb(signal, names[index % len(names)], seed=[seed, index])
              for index, signal in enumerate(clips.signals)] if names else []
    return ClipSet(ids=clips.ids, signals=[*clips.signals, *copies], corpora=clips.corpora,
                   perturbed=len(copies), perturbations=tuple(names))


def _decoded(lake: Lake, ids: list[str]) -> tuple[list[str], list[np.ndarray]]:
    from ser_pipeline.audio import decode_flac

    if not ids:
        return [], []
    rows = lake.audio_for(ids, columns=["audio_id", "audio"])
    by_id = dict(zip(rows.column("audio_id").to_pylist(), rows.column("audio").to_pylist(),
                     strict=True))
    crop = int(MAX_CLIP_S * SAMPLE_RATE)
    kept = [i for i in ids if i in by_id]
    return kept, [decode_flac(by_id[i]["bytes"])[:crop] for i in kept]


def run_ccc(lake: Lake, run_id: str, *, corpora: list[str] | None,
            best_dev_ccc: dict[str, Any] | None) -> list[CccRow]:
    """CCC per reference/corpus/split from the latest evaluation in the metrics table,
    else the run's best dev CCC against the teacher."""
    import pyarrow.dataset as ds

    rows = lake.read("metrics", filter=ds.field("run_id") == run_id).to_pylist() \
        if lake.parts("metrics") else []
    # the global CCC (rows before aggregation existed are global too), not per-speaker means
    rows = [r for r in rows if (r.get("aggregation") or "global") == "global"]
    if rows:
        latest = max(r["evaluated_at"] for r in rows)
        grouped: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            if row["evaluated_at"] != latest:
                continue
            key = (row["reference"], row["corpus"], row["split"])
            entry = grouped.setdefault(key, {"reference": key[0], "corpus": key[1],
                                             "split": key[2], "n": row["n"],
                                             "eval_id": row["eval_id"], "source": "metrics"})
            entry[row["dimension"]] = row["ccc"]
        out = []
        for entry in grouped.values():
            dims = [entry[d] for d in LABELS if entry.get(d) is not None]
            entry["mean"] = float(np.mean(dims)) if dims else None
            out.append(CccRow(**entry))
        return sorted(out, key=lambda e: (e.reference, e.corpus or "", e.split or ""))
    if not best_dev_ccc:
        return []
    return [CccRow(reference="teacher", corpus=",".join(corpora or []) or None, split="dev",
                   source="run.best_dev_ccc",
                   **{k: best_dev_ccc.get(k) for k in (*LABELS, "mean")})]
