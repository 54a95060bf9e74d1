"""The storage interface: a root directory with atomic writes, whatever holds it.

:class:`Storage` holds what every backend shares (root-relative paths, listings, reads,
Parquet) and asks its backend for the few things that differ: how a file is written
atomically, how compare-and-swap is done, how a file gets a version token, and how a
cached listing is dropped. ``Storage(url)`` returns the backend for the URL's scheme, the
one place where local and ``s3://`` part ways (as ``pathlib.Path`` returns a
``PosixPath``).
"""

from __future__ import annotations

import abc
import io
import posixpath
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, ClassVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.config import Settings, get_settings


class StorageError(RuntimeError):
    """A storage root or file cannot be used; the message says which and why."""


def safe_name(name: str, *, what: str = "name") -> str:
    """Validate a user-supplied name used as one path component.

    Raises:
        ValueError: when the name could escape its root or is not a plain identifier.

    Examples:
        >>> safe_name("wav2small-v1")
        'wav2small-v1'
        >>> safe_name("../etc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: invalid name '../etc': use 1-128 letters, digits, ...
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name or "") or ".." in name:
        raise ValueError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name


def scheme_of(url: str) -> str:
    """The URL scheme, ``file`` for plain paths.

    Examples:
        >>> scheme_of("s3://bucket/lake"), scheme_of("./lake"), scheme_of("file:///tmp/x")
        ('s3', 'file', 'file')
    """
    return url.split("://", 1)[0].lower() if "://" in url else "file"


class Storage(abc.ABC):
    """A root directory, local or on S3, with atomic writes.

    ``Storage(url)`` picks the backend from the URL (a local path, ``file://`` or
    ``s3://bucket/prefix``); callers address files by root-relative paths and never learn
    which backend holds them.

    Examples:
        >>> import tempfile
        >>> store = Storage(tempfile.mkdtemp())
        >>> store.write_bytes("a/b.txt", b"hi")
        True
        >>> store.read_bytes("a/b.txt"), store.list("a")
        (b'hi', ['a/b.txt'])
        >>> store.write_bytes("a/b.txt", b"again", exclusive=True)  # create-if-absent
        False
    """

    #: Whether files are on this machine (paths are real paths): recipes walk local trees
    #: themselves, training spawns rather than forks workers for remote lakes.
    is_local: ClassVar[bool]
    _backends: ClassVar[dict[str, type[Storage]]] = {}

    def __init_subclass__(cls, *, scheme: str, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        Storage._backends[scheme] = cls

    def __new__(cls, url: str | None = None, *args: object, **kwargs: object) -> Storage:
        if cls is Storage:  # the one place the backend is chosen
            cls = Storage.backend_for(url or "")
        return super().__new__(cls)

    @staticmethod
    def backend_for(url: str) -> type[Storage]:
        """The backend class for ``url``.

        Raises:
            StorageError: no backend handles the URL's scheme.
        """
        try:
            return Storage._backends[scheme_of(url)]
        except KeyError:
            raise StorageError(f"unsupported storage URL {url!r}: use a local path or "
                               "s3://bucket/prefix") from None

    def __init__(self, url: str, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url
        self.fs, self.root = self._connect(url)

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # -- what a backend provides ---------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem and the root path inside it."""

    @abc.abstractmethod
    def uri(self, relative: str = "") -> str:
        """A URL for the file, usable by other tools (``s3://...`` or a local path)."""

    @abc.abstractmethod
    def _write(self, relative: str, data: bytes, *, exclusive: bool) -> bool:
        """Write a whole file atomically (see :meth:`write_bytes`)."""

    @abc.abstractmethod
    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """``(content, token)`` of a file, or ``(None, None)`` when it does not exist.

        Pass the token to :meth:`replace_if_match`.
        """

    @abc.abstractmethod
    def _swap(self, relative: str, data: bytes, *, token: str, lease_s: float) -> bool:
        """Replace an existing file only if it still has ``token``."""

    @abc.abstractmethod
    def refresh(self, relative: str = "") -> None:
        """Forget cached listings and metadata under ``relative`` (other processes may
        have changed it); a no-op where nothing is cached."""

    @abc.abstractmethod
    def local_copy(self, relative: str) -> AbstractContextManager[Path]:
        """A local file path for tools that need one (a download where the file is
        remote), valid inside the ``with`` block."""

    # -- paths -----------------------------------------------------------------------------------
    def path(self, relative: str = "") -> str:
        """Absolute path inside the filesystem for a root-relative path."""
        relative = relative.strip("/")
        if relative.startswith("..") or "/../" in f"/{relative}/":
            raise StorageError(f"path {relative!r} escapes the storage root {self.url}")
        return posixpath.join(self.root, relative) if relative else self.root

    # -- reads -----------------------------------------------------------------------------------
    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def isdir(self, relative: str) -> bool:
        return self.fs.isdir(self.path(relative))

    def list(self, relative: str = "", *, suffix: str = "") -> list[str]:
        """Root-relative paths of the files directly below ``relative``, sorted."""
        names = []
        for entry in self._ls(relative):
            if entry["type"] != "file":
                continue
            name = posixpath.basename(entry["name"].rstrip("/"))
            if name.startswith(".tmp-") or not name.endswith(suffix):
                continue
            names.append(posixpath.join(relative.strip("/"), name) if relative else name)
        return sorted(names)

    def list_dirs(self, relative: str = "") -> list[str]:
        """Names of the sub-directories directly below ``relative``, sorted."""
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in self._ls(relative)
                      if e["type"] == "directory")

    def _ls(self, relative: str) -> list[dict]:
        # Other processes add parts and runs, so always re-list (s3fs caches listings; the
        # local filesystem accepts and ignores ``refresh``).
        try:
            return self.fs.ls(self.path(relative), detail=True, refresh=True)
        except FileNotFoundError:
            return []

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

    # -- writes (atomic) -------------------------------------------------------------------------
    def write_bytes(self, relative: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write a whole file atomically.

        With ``exclusive=True`` the write happens only if the file does not exist yet, and
        the return value says whether this call created it (on S3 a conditional PUT,
        ``If-None-Match: *``; locally a hard link that fails if the name exists).
        """
        return self._write(relative, data, exclusive=exclusive)

    def write_parquet(self, relative: str, table: pa.Table, *, exclusive: bool = False,
                      compression: str | dict[str, str] = "zstd") -> bool:
        """Write a Parquet file atomically (zstd unless ``compression`` says otherwise,
        per column as pyarrow accepts it; with the table's schema metadata)."""
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=compression)
        return self.write_bytes(relative, buffer.getvalue(), exclusive=exclusive)

    def remove(self, relative: str) -> None:
        path = self.path(relative)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # -- compare-and-swap (small mutable pointers such as a registry's latest alias) ----------
    def replace_if_match(self, relative: str, data: bytes, *, token: str | None,
                         lease_s: float = 60.0) -> bool:
        """Write ``data`` only if the file still has ``token`` (``None``: does not exist).

        Returns whether the write happened; ``False`` means someone else changed the file
        since it was read (read again and retry). On S3 this is a conditional PUT
        (``If-Match: <etag>``), or a :class:`~ser_pipeline.storage.lease.LeaseLock` of
        ``lease_s`` where the server rejects ``If-Match``; locally an ``flock``.
        """
        if token is None:
            return self.write_bytes(relative, data, exclusive=True)
        return self._swap(relative, data, token=token, lease_s=lease_s)

    def _write_if_current(self, relative: str, data: bytes, *, token: str) -> bool:
        """Check the token and write: the swap itself, for a backend to call while it holds
        the file's lock (an ``flock``, a lease)."""
        _, current = self.read_versioned(relative)
        if current != token:
            return False
        self.write_bytes(relative, data)
        return True

