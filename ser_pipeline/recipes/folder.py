"""The ``folder`` recipe: every audio file under a root, no labels.

The walker is shared by every recipe. It never raises for one bad path: a directory
named ``x.wav``, a symlink loop, a dangling link, a name that is not UTF-8, a path too
long for the OS or a directory it may not list each become an entry with a ``problem``
(quarantined by ingest). Only names ending in an audio extension are considered (see
:data:`ser_pipeline.recipes.core.AUDIO_EXTENSIONS`); other files (label sheets, READMEs) are
not audio and are left alone.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from ser_pipeline.recipes.core import AUDIO_EXTENSIONS, Entry, Recipe, RecipeError
from ser_pipeline.storage import Storage


def is_audio_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def printable(name: str) -> str:
    """A UTF-8-safe rendering of an OS name (undecodable bytes as ``\\xNN``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _os_problem(error: OSError, what: str) -> tuple[str, str]:
    if error.errno == errno.ELOOP:
        return "symlink_loop", f"{what}: symbolic links loop ({error.strerror})"
    if error.errno == errno.ENAMETOOLONG:
        return "name_too_long", f"{what}: the path is too long for the OS ({error.strerror})"
    if error.errno == errno.ENOENT:
        return "broken_symlink", f"{what}: a symbolic link points to nothing ({error.strerror})"
    if isinstance(error, PermissionError):
        return "unreadable", f"{what}: permission denied ({error.strerror})"
    return "unreadable", f"{what}: {error.strerror or error}"


def _walk_local(root: str, relative: str) -> list[Entry]:
    entries: list[Entry] = []
    start = os.path.join(root, relative) if relative else root

    def visit(directory: str, rel: str, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            with os.scandir(directory) as iterator:
                children = sorted(iterator, key=lambda e: e.name)
        except OSError as error:
            if rel:  # the root itself failing is the caller's problem, raised below
                entries.append(Entry(rel, problem=_os_problem(error, f"directory {rel!r}")))
                return
            raise
        for child in children:
            child_rel = posixpath.join(rel, child.name) if rel else child.name
            try:
                child_rel.encode("utf-8")
            except UnicodeEncodeError:
                shown = printable(child_rel)
                if child.is_dir(follow_symlinks=False) or is_audio_name(printable(child.name)):
                    entries.append(Entry(shown, problem=(
                        "non_utf8_name", f"{shown!r}: the name is not valid UTF-8, so it cannot "
                        "be recorded faithfully; rename it (e.g. with convmv)")))
                continue
            try:
                info = os.stat(child.path)  # follows links: loops and dangling links raise
            except OSError as error:  # d_type from readdir still says what it is
                if (is_audio_name(child.name) or child.is_symlink()
                        or child.is_dir(follow_symlinks=False)):
                    entries.append(Entry(child_rel, problem=_os_problem(error, repr(child_rel))))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in ancestors:
                    entries.append(Entry(child_rel, problem=(
                        "symlink_loop", f"{child_rel!r} links back to one of its own parent "
                        "directories; it was not followed")))
                    continue
                if is_audio_name(child.name):
                    entries.append(Entry(child_rel, problem=(
                        "not_a_file", f"{child_rel!r} is a directory with an audio extension; "
                        "its contents are walked as usual")))
                visit(child.path, child_rel, (*ancestors, key))
            elif is_audio_name(child.name):
                if not stat.S_ISREG(info.st_mode):
                    entries.append(Entry(child_rel, problem=(
                        "not_a_file", f"{child_rel!r} is not a regular file (device, pipe or "
                        "socket)")))
                else:
                    entries.append(Entry(child_rel, size=info.st_size))

    root_info = os.stat(start)
    visit(start, relative.strip("/"), ((root_info.st_dev, root_info.st_ino),))
    return entries


def _walk_remote(storage: Storage, relative: str) -> list[Entry]:
    base = storage.path(relative)
    found = storage.fs.find(base, withdirs=True, detail=True)
    entries = []
    for name, info in sorted(found.items()):
        rel = posixpath.relpath(name, storage.root)
        if not is_audio_name(rel):
            continue
        if info.get("type") == "directory":
            entries.append(Entry(rel, problem=("not_a_file", f"{rel!r} is a prefix (directory) "
                                               "with an audio extension")))
        else:
            entries.append(Entry(rel, size=int(info.get("size") or 0)))
    return entries


def walk_audio(storage: Storage, relative: str = "") -> list[Entry]:
    """Unlabeled entries for every audio file under ``relative`` (sorted by path).

    Raises:
        RecipeError: the root does not exist or cannot be listed.
    """
    where = storage.uri(relative)
    try:
        if not storage.isdir(relative):
            raise RecipeError(f"corpus folder {where} does not exist or is not a directory; "
                              "pass the folder that holds the audio")
        if storage.is_local:
            entries = _walk_local(storage.root, relative.strip("/"))
        else:
            entries = _walk_remote(storage, relative)
    except PermissionError as error:
        raise RecipeError(f"cannot list {where}: {error}; check its permissions") from None
    return sorted(entries, key=lambda e: e.source_path)


def merge_with_audio(storage: Storage, labelled: list[Entry], *,
                     audio_roots: tuple[str, ...] = ("",),
                     include_unlabeled: bool = True) -> list[Entry]:
    """Join label entries with the audio found under ``audio_roots``.

    Files with labels keep them; audio without labels joins as unlabeled entries (the
    teacher's pool) when ``include_unlabeled``; labels naming a file that is not there
    become ``missing_file`` quarantine entries; duplicate label rows for one file become
    ``duplicate_label`` entries.
    """
    found = {e.source_path: e for root in audio_roots for e in walk_audio(storage, root)}
    by_path: dict[str, Entry] = {}
    for entry in labelled:
        previous = by_path.get(entry.source_path)
        if previous is not None:
            first = previous.extra.get("where", "an earlier row")
            by_path[entry.source_path] = Entry(
                source_path=entry.source_path,
                problem=("duplicate_label",
                         f"{entry.extra.get('where', 'a row')} labels {entry.source_path!r} "
                         f"again ({first} did too); keep one row per file"),
            )
            continue
        by_path[entry.source_path] = entry
    result: list[Entry] = []
    for path, entry in by_path.items():
        listed = found.pop(path, None)
        if entry.problem is None and listed is None:
            entry.problem = ("missing_file", f"{entry.extra.get('where', 'the label file')} "
                             f"names {path!r} but no such audio file exists under the corpus "
                             "root")
        elif listed is not None:
            entry.size = listed.size
            if listed.problem and entry.problem is None:
                entry.problem = listed.problem
        result.append(entry)
    if include_unlabeled:
        result.extend(found.values())
    return sorted(result, key=lambda e: e.source_path)


def prepare_folder(source: Storage | str, **_: object) -> list[Entry]:
    """Every audio file under ``source``, without labels.

    Args:
        source: the corpus root (a :class:`Storage` or a local path / ``s3://`` URL).

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "a.wav").write_bytes(b"")
        0
        >>> [e.source_path for e in prepare_folder(str(root))]
        ['a.wav']
    """
    storage = source if isinstance(source, Storage) else Storage(source)
    return walk_audio(storage)


RECIPE = Recipe("folder", prepare_folder)
