"""Deterministic, incremental train/dev splits stored in the lake's ``splits`` table.

Rules, per corpus:

1. A clip whose ingest recorded a ``split`` (e.g. MSP-Podcast's ``Train`` /
   ``Development`` / ``Test1``) keeps it, normalised: train, dev (Development, valid,
   validation), and anything else lower-cased (``test1``, ``test2``, ``test``).
2. Otherwise the unit of assignment is the speaker where the clip has one (all of a
   speaker's clips land on the same side), else the clip itself (``audio_id``).
3. A corpus's first assignment ranks its units by ``sha256(split_name/corpus/unit)`` and
   sends the first ``round(dev_fraction * units)`` to dev (at least one unit each side when
   there are two or more), so even a corpus with six speakers gets a real dev set.
4. Later runs never move a stored clip. A new clip of a known speaker follows that
   speaker; a new unit goes to dev when its hash, read as a number in [0, 1), is below
   ``dev_fraction``.

Rows are written through ``Lake.write_part`` with a content key, so re-running adds
nothing and two concurrent runs write the same part name (one of them is a no-op).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import pyarrow.compute as pc
import pyarrow.dataset as ds

from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key

_ALIASES = {"train": "train", "training": "train", "dev": "dev", "development": "dev",
            "valid": "dev", "validation": "dev", "val": "dev"}


def split_name_for(dev_fraction: float) -> str:
    """The name of the split definition for a dev fraction (``speaker-hash-dev20``)."""
    return f"speaker-hash-dev{round(dev_fraction * 100)}"


DEFAULT_DEV_FRACTION = 0.2
DEFAULT_SPLIT_NAME = split_name_for(DEFAULT_DEV_FRACTION)


def normalise_split(value: str) -> str:
    """Map an ingest split label to ``train``/``dev``, else keep it lower-cased."""
    cleaned = value.strip().lower().replace(" ", "")
    return _ALIASES.get(cleaned, cleaned)


def _unit_hash(split_name: str, corpus: str, unit: str) -> float:
    """A unit's place in [0, 1): the first 8 bytes of its sha256, as a fraction."""
    return int(sha256_bytes(f"{split_name}/{corpus}/{unit}".encode())[:16], 16) / 2**64


def ensure_splits(
    lake: Lake,
    *,
    corpora: Iterable[str] | None = None,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    split_name: str | None = None,
) -> dict:
    """Assign every not-yet-assigned clip of the audio table to a split and store it.

    Args:
        lake: The lake.
        corpora: Only these corpora (default: all in the audio table).
        dev_fraction: Share of units (speakers or clips) sent to dev, in (0, 1).
        split_name: Name of the split definition (default derived from ``dev_fraction``).

    Returns:
        Summary ``{split_name, new, corpora: {corpus: {split: count}}}``.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    split_name = split_name or split_name_for(dev_fraction)
    wanted = sorted(set(corpora)) if corpora is not None else None
    filter_ = ds.field("corpus").isin(wanted) if wanted is not None else None
    audio = lake.read("audio", columns=["audio_id", "corpus", "speaker", "split"],
                      filter=filter_).to_pylist()
    if wanted is not None:
        missing = sorted(set(wanted) - {row["corpus"] for row in audio})
        if missing:
            known = sorted(set(lake.read("audio", columns=["corpus"]).column("corpus")
                               .to_pylist()))
            raise ValueError(f"corpus {', '.join(missing)} has no audio in lake {lake.url}; "
                             f"corpora present: {', '.join(known) or 'none (run ser ingest)'}")
    stored = _stored(lake, split_name)
    by_corpus: dict[str, list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for row in audio:
        if row["audio_id"] not in seen:  # the same bytes ingested twice count once
            seen.add(row["audio_id"])
            by_corpus[row["corpus"]].append(row)

    new_total = 0
    counts: dict[str, dict[str, int]] = {}
    for corpus, rows in sorted(by_corpus.items()):
        assigned = {row["audio_id"]: stored[row["audio_id"]] for row in rows
                    if row["audio_id"] in stored}
        fresh = [row for row in rows if row["audio_id"] not in assigned]
        if fresh:
            new = _assign(corpus, rows, fresh, assigned, dev_fraction, split_name)
            ids = sorted(new)
            lake.write_part(
                "splits",
                [{"audio_id": i, "corpus": corpus, "split": new[i], "split_name": split_name}
                 for i in ids],
                key=content_key("splits", split_name, corpus, ids),
            )
            assigned.update(new)
            new_total += len(new)
        tally: dict[str, int] = defaultdict(int)
        for split in assigned.values():
            tally[split] += 1
        counts[corpus] = dict(sorted(tally.items()))
    return {"split_name": split_name, "new": new_total, "corpora": counts}


def _assign(corpus: str, rows: list[dict], fresh: list[dict], assigned: dict[str, str],
            dev_fraction: float, split_name: str) -> dict[str, str]:
    def unit(row: dict) -> str:
        return f"spk:{row['speaker']}" if row["speaker"] else f"clip:{row['audio_id']}"

    result: dict[str, str] = {}
    # Units already placed (a known speaker keeps its side).
    unit_split: dict[str, str] = {}
    for row in rows:
        if row["audio_id"] in assigned and not row["split"]:
            unit_split.setdefault(unit(row), assigned[row["audio_id"]])
    first_time = not assigned
    free_units = sorted({unit(r) for r in fresh if not r["split"]} - set(unit_split))
    if first_time and free_units:
        ranked = sorted(free_units, key=lambda u: (_unit_hash(split_name, corpus, u), u))
        n_dev = round(dev_fraction * len(ranked))
        if len(ranked) >= 2:
            n_dev = min(max(n_dev, 1), len(ranked) - 1)
        for index, name in enumerate(ranked):
            unit_split[name] = "dev" if index < n_dev else "train"
    else:
        for name in free_units:
            unit_split[name] = ("dev" if _unit_hash(split_name, corpus, name) < dev_fraction
                                else "train")
    for row in fresh:
        result[row["audio_id"]] = (normalise_split(row["split"]) if row["split"]
                                   else unit_split[unit(row)])
    return result


def _stored(lake: Lake, split_name: str) -> dict[str, str]:
    table = lake.read("splits", columns=["audio_id", "split"],
                      filter=ds.field("split_name") == split_name)
    result: dict[str, str] = {}
    # Part files are listed in name order, so a duplicate (never expected) resolves the
    # same way on every read.
    for audio_id, split in zip(table.column("audio_id").to_pylist(),
                               table.column("split").to_pylist(), strict=True):
        result.setdefault(audio_id, split)
    return result


def read_splits(
    lake: Lake,
    *,
    split_name: str = DEFAULT_SPLIT_NAME,
    corpora: Iterable[str] | None = None,
) -> dict[str, str]:
    """``audio_id -> split`` for one split definition (optionally a few corpora)."""
    filter_ = ds.field("split_name") == split_name
    if corpora is not None:
        filter_ = filter_ & ds.field("corpus").isin(sorted(set(corpora)))
    table = lake.read("splits", columns=["audio_id", "split"], filter=filter_)
    result: dict[str, str] = {}
    for audio_id, split in zip(table.column("audio_id").to_pylist(),
                               table.column("split").to_pylist(), strict=True):
        result.setdefault(audio_id, split)
    return result


def split_names(lake: Lake) -> list[str]:
    """The split definitions stored in the lake."""
    return sorted(pc.unique(lake.read("splits", columns=["split_name"])
                            .column("split_name")).to_pylist())
