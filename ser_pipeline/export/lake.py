"""What an export reads from the lake: clips to calibrate and check on, and the run's CCC."""

from __future__ import annotations

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

    from ser_pipeline.audio import decode_flac

    if split is not None:
        condition = ds.field("split") == split
        if split_name:
            condition = condition & (ds.field("split_name") == split_name)
        ids = sorted(lake.ids("splits", filter=condition))
    else:
        ids = sorted(lake.ids("audio"))
    ids = [i for i in ids if i not in (exclude or set())][:limit]
    if not ids:
        return [], []
    rows = lake.audio_for(ids, columns=["audio_id", "audio"])
    by_id = dict(zip(rows.column("audio_id").to_pylist(), rows.column("audio").to_pylist(),
                     strict=True))
    keep_ids, signals = [], []
    crop = int(MAX_CLIP_S * SAMPLE_RATE)
    for audio_id in ids:
        if audio_id in by_id:
            keep_ids.append(audio_id)
            signals.append(decode_flac(by_id[audio_id]["bytes"])[:crop])
    return keep_ids, signals


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
