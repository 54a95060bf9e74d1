"""The only module that touches files: local paths and ``s3://`` through fsspec.

Every write is atomic per file. Locally we write a temporary sibling and ``os.replace``
it; on S3 a single PUT either lands whole or not at all. Callers address files by a path
relative to the storage root and never learn which backend holds them.
"""

from __future__ import annotations

import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.config import Settings, get_settings


class StorageError(RuntimeError):
    """A storage root or file cannot be used; the message says which and why."""


def filesystem_for(url: str, *, settings: Settings | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and root path inside it for ``url``."""
    settings = settings or get_settings()
    if url.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(**settings.s3_options())
        return fs, url[len("s3://"):].rstrip("/")
    if "://" in url and not url.startswith("file://"):
        raise StorageError(f"unsupported storage URL {url!r}: use a local path or s3://bucket/prefix")
    path = url[len("file://"):] if url.startswith("file://") else url
    return fsspec.filesystem("file"), str(Path(path).expanduser().resolve())


def safe_name(name: str, *, what: str = "name") -> str:
    """Validate a user-supplied name used as one path component.

    Raises:
        ValueError: when the name could escape its root or is not a plain identifier.
    """
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name or "") or ".." in name:
        raise ValueError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name


class Storage:
    """A root directory, local or on S3, with atomic writes.

    Examples:
        >>> import tempfile
        >>> store = Storage(tempfile.mkdtemp())
        >>> store.write_bytes("a/b.txt", b"hi")
        >>> store.read_bytes("a/b.txt")
        b'hi'
    """

    def __init__(self, url: str, *, settings: Settings | None = None) -> None:
        self.url = url.rstrip("/") if url.startswith("s3://") else url
        self.settings = settings or get_settings()
        self.fs, self.root = filesystem_for(url, settings=self.settings)
        self.is_local = not url.startswith("s3://")

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # -- paths ---------------------------------------------------------------------------
    def path(self, relative: str = "") -> str:
        """Absolute path inside the filesystem for a root-relative path."""
        relative = relative.strip("/")
        if relative.startswith("..") or "/../" in f"/{relative}/":
            raise StorageError(f"path {relative!r} escapes the storage root {self.url}")
        return posixpath.join(self.root, relative) if relative else self.root

    def uri(self, relative: str = "") -> str:
        """A URL for the file, usable by other tools (``s3://...`` or a local path)."""
        path = self.path(relative)
        return f"s3://{path}" if not self.is_local else path

    # -- reads ---------------------------------------------------------------------------
    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def isdir(self, relative: str) -> bool:
        return self.fs.isdir(self.path(relative))

    def list(self, relative: str = "", *, suffix: str = "") -> list[str]:
        """Root-relative paths of the files directly below ``relative``, sorted."""
        base = self.path(relative)
        try:
            entries = self.fs.ls(base, detail=True, refresh=True) if not self.is_local else (
                self.fs.ls(base, detail=True))
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            if entry["type"] != "file":
                continue
            name = posixpath.basename(entry["name"].rstrip("/"))
            if name.startswith(".tmp-") or not name.endswith(suffix):
                continue
            names.append(posixpath.join(relative.strip("/"), name) if relative else name)
        return sorted(names)

    def list_dirs(self, relative: str = "") -> list[str]:
        """Names of the sub-directories directly below ``relative``, sorted."""
        try:
            entries = self.fs.ls(self.path(relative), detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory"
        )

    def read_bytes(self, relative: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(relative))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(relative)} does not exist") from None

    def open(self, relative: str, mode: str = "rb") -> IO:
        if "w" in mode or "a" in mode:
            raise StorageError("use write_bytes/write_parquet: writes must be atomic")
        return self.fs.open(self.path(relative), mode)

    def read_parquet(self, relative: str, *, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open(self.path(relative), "rb") as handle:
            return pq.read_table(handle, columns=columns)

    # -- writes (atomic) -----------------------------------------------------------------
    def write_bytes(self, relative: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write a whole file atomically.

        With ``exclusive=True`` the write happens only if the file does not exist yet, and
        the return value says whether this call created it. On S3 this uses a conditional
        PUT (``If-None-Match: *``).
        """
        target = self.path(relative)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = os.path.join(os.path.dirname(target), f".tmp-{uuid.uuid4().hex}")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                if exclusive:
                    try:
                        os.link(tmp, target)  # fails atomically if target exists
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, target)
                    tmp = None
            finally:
                if tmp and os.path.exists(tmp):
                    os.unlink(tmp)
            return True
        if exclusive:
            try:
                self.fs.pipe_file(target, data, mode="create")
            except FileExistsError:
                return False
            except OSError as error:  # precondition failure surfaces as an OSError
                if "PreconditionFailed" in str(error) or "412" in str(error):
                    return False
                raise
            return True
        self.fs.pipe_file(target, data)
        return True

    def write_parquet(self, relative: str, table: pa.Table, *, exclusive: bool = False) -> bool:
        """Write a Parquet file atomically (zstd, with the table's schema metadata)."""
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return self.write_bytes(relative, buffer.getvalue(), exclusive=exclusive)

    def remove(self, relative: str) -> None:
        path = self.path(relative)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @contextmanager
    def local_copy(self, relative: str) -> Iterator[Path]:
        """A local file path for tools that need one (downloaded to a temp dir on S3)."""
        if self.is_local:
            yield Path(self.path(relative))
            return
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / posixpath.basename(relative)
            self.fs.get(self.path(relative), str(local))
            yield local
