"""The local backend: a directory on this machine (plain paths and ``file://`` URLs).

A write goes to a ``.tmp-*`` sibling, is fsynced, then renamed into place (or hard-linked,
which fails atomically when the name exists, for create-if-absent). Compare-and-swap holds
an ``flock`` on a sibling lock file around the check and the rename.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.storage.base import Storage


class LocalStorage(Storage, scheme="file"):
    """A local directory as a storage root.

    Examples:
        >>> import tempfile
        >>> store = Storage(tempfile.mkdtemp())
        >>> type(store).__name__, store.is_local
        ('LocalStorage', True)
        >>> store.replace_if_match("alias", b"1", token=None)  # create
        True
        >>> _, token = store.read_versioned("alias")
        >>> store.replace_if_match("alias", b"2", token=token)
        True
        >>> store.replace_if_match("alias", b"3", token=token)  # changed since read
        False
    """

    is_local = True

    def _connect(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        path = url[len("file://"):] if url.startswith("file://") else url
        return fsspec.filesystem("file"), str(Path(path).expanduser().resolve())

    def uri(self, relative: str = "") -> str:
        return self.path(relative)

    def _write(self, relative: str, data: bytes, *, exclusive: bool) -> bool:
        target = self.path(relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp: str | None = os.path.join(os.path.dirname(target), f".tmp-{uuid.uuid4().hex}")
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

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """``(content, token)``; the token is the sha256 of the content."""
        try:
            with open(self.path(relative), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None, None
        return data, sha256_bytes(data)

    def _swap(self, relative: str, data: bytes, *, token: str, lease_s: float) -> bool:
        target = self.path(relative)
        lock_path = os.path.join(os.path.dirname(target), f".tmp-lock-{os.path.basename(target)}")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._write_if_current(relative, data, token=token)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def refresh(self, relative: str = "") -> None:
        """Nothing to forget: local listings are never cached."""

    @contextmanager
    def local_copy(self, relative: str) -> Iterator[Path]:
        yield Path(self.path(relative))
