"""Ingest: raw corpus files -> the lake's ``audio/``, ``human_labels/`` and ``quarantine/``.

The work is split so that an orchestrator can fan it out (the Prefect flow maps one task
per shard) while the library runs alone with a bounded thread pool:

* :func:`plan_ingest` runs the recipe, drops files already in the lake (by corpus and
  source path, without reading them) and cuts the rest into shards of file references.
* :func:`ingest_shard` reads, hashes, decodes and resamples one shard's files and writes
  at most one part file per table, named by its content, so a retried shard is a no-op.
* :func:`merge_summaries` adds the shard summaries up.

Identity and duplicates: ``audio_id`` is the sha256 of the source bytes. A file whose
(corpus, source_path) is already in ``audio/`` is skipped without being read (fast
re-runs; an edited file at the same path is *not* re-ingested, documented in
docs/stages/ingest.md). A new path whose bytes are already in the lake (the same
recording twice, or in two corpora) is stored once: the second path gets a
``duplicate_content`` quarantine row naming the ``audio_id`` it repeats. Files of equal
byte size go to the same shard whenever the group fits one, so identical files meet in
one shard and are deduplicated there, not raced across shards.
"""

from __future__ import annotations

import errno
import functools
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ser_pipeline.audio import SILENCE_THRESHOLD, AudioError, decode, encode_flac, is_silent
from ser_pipeline.executor import map_shards
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.quarantine import QuarantineRow
from ser_pipeline.recipes import REGISTRY, Entry, RecipeError, get_recipe
from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.storage import Storage, StorageError, safe_name

STAGE = "ingest"
# A shard holds its files' bytes in memory while it works; cut shards at about this much.
SHARD_MAX_BYTES = 256 * 2**20

# Problems found while listing (never read) and while reading (OS errors) get these codes;
# decode problems use ser_pipeline.audio.REASONS.
LISTING_REASONS: tuple[str, ...] = (
    "not_a_file", "symlink_loop", "broken_symlink", "non_utf8_name", "name_too_long",
    "unreadable", "missing_file", "bad_path", "label_invalid", "label_out_of_range",
    "duplicate_label", "duplicate_content",
)


def plan_ingest(
    lake: Lake,
    source: str,
    *,
    corpus: str,
    recipe: str = "folder",
    recipe_options: dict | None = None,
    shard_size: int | None = None,
) -> tuple[list[dict], dict]:
    """Run the recipe and cut the files still to ingest into shards.

    Returns:
        ``(shards, plan)``: shards are JSON-able dicts of file references; ``plan`` holds
        the counts known before any file is read (``files_seen``, ``skipped_existing``).

    Raises:
        RecipeError: the corpus cannot be read as a whole (bad label sheet, wrong root,
            unknown recipe or option); the message says what to fix.
    """
    safe_name(corpus, what="corpus name")
    settings = lake.storage.settings
    shard_size = shard_size or settings.shard_size
    source_storage = Storage(source, settings=settings)
    prepare = get_recipe(recipe)
    accepted = REGISTRY[recipe].options
    options = {k: v for k, v in (recipe_options or {}).items() if v is not None}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise RecipeError(f"option(s) {', '.join(unknown)} do not apply to recipe {recipe!r} "
                          f"(it takes: {', '.join(sorted(accepted)) or 'no options'})")
    entries = prepare(source_storage, **options)
    present = _present_paths(lake, corpus)
    todo = [e for e in entries if e.problem is not None or e.source_path not in present]
    shards = [
        {"source": source_storage.url, "corpus": corpus, "index": index,
         "entries": [_reference(e) for e in group]}
        for index, group in enumerate(_size_grouped_shards(todo, shard_size))
    ]
    plan = {"corpus": corpus, "recipe": recipe, "source": source_storage.url, "lake": lake.url,
            "files_seen": len(entries), "skipped_existing": len(entries) - len(todo),
            "shards": len(shards)}
    return shards, plan


def ingest_shard(
    shard: dict,
    *,
    lake: Lake | str,
    max_duration_s: float | None = None,
    silence_threshold: float = SILENCE_THRESHOLD,
) -> dict:
    """Ingest one shard; returns its partial summary (see :func:`merge_summaries`).

    Writes human labels, then quarantine rows, then audio rows, each as one part named by
    its content. Audio goes last because its presence marks a path as done: a crash
    between writes re-runs the shard, and the earlier parts are found by their keys (or
    filtered as already present) instead of duplicated.
    """
    lake = Lake.open(lake) if isinstance(lake, str) else lake
    settings = lake.storage.settings
    max_duration_s = settings.max_duration_s if max_duration_s is None else max_duration_s
    source = Storage(shard["source"], settings=settings)
    corpus = shard["corpus"]
    entries = [Entry.from_dict(e) for e in shard["entries"]]
    now = utcnow()
    audio_rows: list[dict] = []
    label_rows: list[dict] = []
    quarantine_rows: list[dict] = []
    seen: dict[str, str] = {}
    loaded: list[tuple[Entry, str, bytes]] = []

    def quarantine(entry: Entry, reason: str, message: str, audio_id: str | None = None) -> None:
        quarantine_rows.append(QuarantineRow(
            corpus=corpus, source_path=entry.source_path, audio_id=audio_id, stage=STAGE,
            reason=reason, message=message, quarantined_at=now).to_dict())

    for entry in entries:
        if entry.problem is not None:
            quarantine(entry, *entry.problem)
            continue
        try:
            data = source.read_bytes(entry.source_path)
        except OSError as error:
            quarantine(entry, *_read_problem(error, entry.source_path))
            continue
        except StorageError as error:
            quarantine(entry, "bad_path", str(error))
            continue
        loaded.append((entry, sha256_bytes(data), data))

    in_lake = _stored_paths(lake, {audio_id for _, audio_id, _ in loaded})
    silent = 0
    seconds = 0.0
    already = 0
    for entry, audio_id, data in loaded:
        if (corpus, entry.source_path) in in_lake.get(audio_id, ()):
            already += 1  # a retried shard whose audio part had landed
            continue
        if audio_id in in_lake or audio_id in seen:
            where = seen.get(audio_id, "a file already in the lake")
            quarantine(entry, "duplicate_content",
                       f"same bytes as {where} (audio_id {audio_id}); stored once", audio_id)
            continue
        try:
            decoded = decode(data, max_duration_s=max_duration_s)
        except AudioError as error:
            quarantine(entry, error.reason, error.message, audio_id)
            continue
        del data
        seen[audio_id] = repr(entry.source_path)
        flagged = is_silent(decoded.signal, threshold=silence_threshold)
        silent += flagged
        duration = decoded.signal.size / SAMPLE_RATE
        seconds += duration
        audio_rows.append({
            "audio_id": audio_id,
            "audio": {"bytes": encode_flac(decoded.signal), "path": f"{audio_id}.flac"},
            "corpus": corpus, "source_path": entry.source_path, "duration_s": duration,
            "orig_sample_rate": decoded.orig_sample_rate,
            "orig_channels": decoded.orig_channels, "orig_format": decoded.orig_format,
            "speaker": entry.speaker, "split": entry.split, "is_silent": flagged,
            "ingested_at": now, "gender": entry.gender,
        })
        if entry.has_labels:
            label_rows.append({"audio_id": audio_id, "corpus": corpus, "arousal": entry.arousal,
                               "dominance": entry.dominance, "valence": entry.valence,
                               "source_scale": entry.source_scale, "ingested_at": now})

    labelled_before = _existing(lake, "human_labels", {r["audio_id"] for r in label_rows},
                                corpus=corpus)
    label_rows = [r for r in label_rows if r["audio_id"] not in labelled_before]
    if label_rows:
        lake.write_part("human_labels", label_rows, key=content_key(
            "ingest-labels", corpus, sorted(r["audio_id"] for r in label_rows)))
    new_quarantine = _new_quarantine_rows(lake, corpus, quarantine_rows)
    if new_quarantine:
        lake.write_part("quarantine", new_quarantine, key=content_key(
            "ingest-quarantine", corpus,
            sorted((r["source_path"], r["reason"], r["audio_id"] or "") for r in new_quarantine)))
    if audio_rows:
        lake.write_part("audio", audio_rows, key=content_key(
            "ingest-audio", corpus, sorted(r["audio_id"] for r in audio_rows)))
    return {
        "ingested": len(audio_rows),
        "skipped_existing": already,
        "labelled": len(label_rows),
        "quarantined": dict(Counter(r["reason"] for r in quarantine_rows)),
        "quarantine_rows_written": len(new_quarantine),
        "silent_flagged": silent,
        "audio_seconds": seconds,
    }


def merge_summaries(plan: dict, partials: Sequence[dict], *, elapsed_s: float | None = None,
                    ) -> dict:
    """The run summary: the plan's counts plus the shards' counts added up."""
    quarantined: Counter = Counter()
    for partial in partials:
        quarantined.update(partial["quarantined"])
    total = sum(quarantined.values())
    seconds = sum(p["audio_seconds"] for p in partials)
    summary = {
        **plan,
        "skipped_existing": plan["skipped_existing"]
        + sum(p.get("skipped_existing", 0) for p in partials),
        "ingested": sum(p["ingested"] for p in partials),
        "labelled": sum(p["labelled"] for p in partials),
        "silent_flagged": sum(p["silent_flagged"] for p in partials),
        "quarantined_total": total,
        "quarantine_rows_written": sum(p["quarantine_rows_written"] for p in partials),
        "quarantined": dict(sorted(quarantined.items())),
        "audio_seconds": round(seconds, 3),
    }
    if elapsed_s is not None:
        summary["elapsed_s"] = round(elapsed_s, 3)
        summary["audio_seconds_per_s"] = round(seconds / elapsed_s, 2) if elapsed_s > 0 else 0.0
    return summary


def ingest(
    lake: Lake,
    source: str,
    *,
    corpus: str,
    recipe: str = "folder",
    recipe_options: dict | None = None,
    max_duration_s: float | None = None,
    silence_threshold: float = SILENCE_THRESHOLD,
    executor: Executor | None = None,
    max_workers: int | None = None,
    shard_size: int | None = None,
) -> dict:
    """Ingest a corpus (local folder or ``s3://`` prefix) into the lake.

    Args:
        lake: the target lake.
        source: the corpus root, a local path or ``s3://bucket/prefix``.
        corpus: the corpus name recorded on every row (letters, digits, ``._-``).
        recipe: a name in :data:`ser_pipeline.recipes.RECIPES` (``folder`` by default).
        recipe_options: keyword options of the recipe (e.g. ``{"label_min": 1}``).
        max_duration_s: quarantine longer files (default: ``Settings.max_duration_s``).
        silence_threshold: peak magnitude at or below which a clip is flagged silent.
        executor: run shards on this executor (default: a bounded thread pool).
        max_workers: the bound of the default pool (default: ``Settings.max_workers``).
        shard_size: files per shard (default: ``Settings.shard_size``).

    Returns:
        The summary: ``ingested``, ``skipped_existing``, ``quarantined`` (by reason),
        ``silent_flagged``, ``labelled``, ``audio_seconds`` and more.

    Examples:
        >>> import tempfile
        >>> from ser_pipeline.lake import Lake
        >>> lake = Lake.open(tempfile.mkdtemp())
        >>> ingest(lake, tempfile.mkdtemp(), corpus="empty")["ingested"]
        0
    """
    started = time.perf_counter()
    shards, plan = plan_ingest(lake, source, corpus=corpus, recipe=recipe,
                               recipe_options=recipe_options, shard_size=shard_size)
    work = functools.partial(ingest_shard, lake=lake, max_duration_s=max_duration_s,
                             silence_threshold=silence_threshold)
    partials = map_shards(work, shards, executor=executor,
                          max_workers=max_workers or lake.storage.settings.max_workers,
                          description=f"ingest {corpus}")
    return merge_summaries(plan, partials, elapsed_s=time.perf_counter() - started)


# -- helpers ---------------------------------------------------------------------------------
def _reference(entry: Entry) -> dict:
    data = entry.to_dict()
    data.pop("extra", None)  # recipe notes stay out of task inputs
    return data


def _size_grouped_shards(entries: list[Entry], shard_size: int,
                         max_bytes: int = SHARD_MAX_BYTES) -> list[list[Entry]]:
    """Shards of at most ``shard_size`` files (and about ``max_bytes`` of source bytes,
    which a shard holds in memory) where files of one byte size stay together when their
    group fits (identical files have equal sizes, so they meet in one shard)."""
    ordered = sorted(entries, key=lambda e: (e.size if e.size is not None else -1,
                                             e.source_path))
    groups: list[list[Entry]] = []
    for entry in ordered:
        if groups and entry.size is not None and groups[-1][0].size == entry.size:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    shards: list[list[Entry]] = []
    current: list[Entry] = []
    current_bytes = 0
    for group in groups:
        group_bytes = sum(e.size or 0 for e in group)
        if current and (len(current) + len(group) > shard_size
                        or current_bytes + group_bytes > max_bytes):
            shards.append(current)
            current, current_bytes = [], 0
        while len(group) > shard_size:
            shards.append(group[:shard_size])
            group = group[shard_size:]
        current.extend(group)
        current_bytes += sum(e.size or 0 for e in group)
    if current:
        shards.append(current)
    return shards


def _present_paths(lake: Lake, corpus: str) -> set[str]:
    table = lake.read("audio", columns=["source_path"], filter=ds.field("corpus") == corpus)
    return set(table.column("source_path").to_pylist())


def _stored_paths(lake: Lake, audio_ids: set[str]) -> dict[str, set[tuple[str, str]]]:
    """For ids already in ``audio/``: the (corpus, source_path) pairs stored under them."""
    if not audio_ids:
        return {}
    table = lake.read("audio", columns=["audio_id", "corpus", "source_path"],
                      filter=ds.field("audio_id").isin(pa.array(sorted(audio_ids), pa.string())))
    stored: dict[str, set[tuple[str, str]]] = {}
    for row in table.to_pylist():
        stored.setdefault(row["audio_id"], set()).add((row["corpus"], row["source_path"]))
    return stored


def _existing(lake: Lake, table: str, audio_ids: set[str], *, corpus: str | None = None,
              ) -> set[str]:
    if not audio_ids:
        return set()
    condition = ds.field("audio_id").isin(pa.array(sorted(audio_ids), pa.string()))
    if corpus is not None:
        condition = condition & (ds.field("corpus") == corpus)
    return lake.ids(table, filter=condition)


def _new_quarantine_rows(lake: Lake, corpus: str, rows: list[dict]) -> list[dict]:
    """Drop rows already recorded for the same (path, reason, audio_id) by an earlier run."""
    if not rows:
        return []
    paths = pa.array(sorted({r["source_path"] for r in rows}), pa.string())
    old = lake.read("quarantine", columns=["source_path", "reason", "audio_id"],
                    filter=(ds.field("corpus") == corpus) & (ds.field("stage") == STAGE)
                    & ds.field("source_path").isin(paths))
    recorded = set(zip(old.column("source_path").to_pylist(), old.column("reason").to_pylist(),
                       pc.fill_null(old.column("audio_id"), "").to_pylist(), strict=True))
    unique: dict[tuple, dict] = {}
    for row in rows:
        key = (row["source_path"], row["reason"], row["audio_id"] or "")
        if key not in recorded:
            unique.setdefault(key, row)
    return list(unique.values())


def _read_problem(error: OSError, path: str) -> tuple[str, str]:
    if isinstance(error, IsADirectoryError):
        return "not_a_file", f"{path!r} is a directory, not an audio file"
    if isinstance(error, PermissionError):
        return "unreadable", f"cannot read {path!r}: permission denied ({error})"
    if isinstance(error, FileNotFoundError):
        return "missing_file", f"{path!r} disappeared or is a dangling link: {error}"
    if error.errno == errno.ELOOP:
        return "symlink_loop", f"{path!r}: symbolic links loop ({error})"
    if error.errno == errno.ENAMETOOLONG:
        return "name_too_long", f"{path!r}: the path is too long for the OS ({error})"
    return "unreadable", f"cannot read {path!r}: {error}"
