"""The only package that touches files: local paths and ``s3://`` through fsspec.

Every write is atomic per file. Callers address files by a path relative to the storage
root and never learn which backend holds them: ``Storage(url)`` picks
:class:`~ser_pipeline.storage.local.LocalStorage` or
:class:`~ser_pipeline.storage.s3.S3Storage` from the URL, and both implement the interface
in :mod:`ser_pipeline.storage.base`. :class:`~ser_pipeline.storage.lease.LeaseLock` is the
lock object that labeling and the registry share.

Examples:
    >>> import tempfile
    >>> store = Storage(tempfile.mkdtemp())
    >>> store.write_bytes("a/b.txt", b"hi")
    True
    >>> fs, root = filesystem_for(store.url)
    >>> root == store.root
    True
"""

from __future__ import annotations

import fsspec

from ser_pipeline.config import Settings
from ser_pipeline.storage.base import Storage, StorageError, safe_name, scheme_of
from ser_pipeline.storage.lease import Lease, LeaseLock
from ser_pipeline.storage.local import LocalStorage
from ser_pipeline.storage.s3 import S3Failure, S3Storage


def filesystem_for(url: str, *, settings: Settings | None = None,
                   ) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the root path inside it for ``url``.

    Raises:
        StorageError: the URL's scheme is not supported.
    """
    storage = Storage(url, settings=settings)
    return storage.fs, storage.root


__all__ = ["Lease", "LeaseLock", "LocalStorage", "S3Failure", "S3Storage", "Storage",
           "StorageError", "filesystem_for", "safe_name", "scheme_of"]
