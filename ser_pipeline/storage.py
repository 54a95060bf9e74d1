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


def filesystem_for(
    url: str, *, settings: Settings | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
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
            entries = self._ls(base)
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

    def _ls(self, path: str) -> list[dict]:
        # s3fs caches listings; other processes add parts and runs, so always re-list.
        # (The local filesystem accepts and ignores ``refresh``.)
        return self.fs.ls(path, detail=True, refresh=True)

    def list_dirs(self, relative: str = "") -> list[str]:
        """Names of the sub-directories directly below ``relative``, sorted."""
        try:
            entries = self._ls(self.path(relative))
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
        try:
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
        except Exception as error:
            raise _write_error(self.uri(relative), error) from error

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

    # -- compare-and-swap (small mutable pointers such as a registry's latest alias) ------
    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """``(content, token)`` of a file, or ``(None, None)`` when it does not exist.

        Pass the token to :meth:`replace_if_match`. On S3 it is the object's ETag; locally
        the sha256 of the content.
        """
        if self.is_local:
            try:
                with open(self.path(relative), "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                return None, None
            return data, _content_token(data)
        try:
            response = self.fs.call_s3("get_object", **self._bucket_key(relative))
        except FileNotFoundError:
            return None, None
        body = response["Body"]
        data = _run_sync(self.fs, body.read())
        return data, response["ETag"]

    def replace_if_match(self, relative: str, data: bytes, *, token: str | None,
                         lease_s: float = 60.0) -> bool:
        """Write ``data`` only if the file still has ``token`` (``None``: does not exist).

        Returns whether the write happened; ``False`` means someone else changed the file
        since it was read (read again and retry). On S3 this is a conditional PUT
        (``If-Match: <etag>``). Locally, an ``flock`` on a sibling lock file serialises the
        check and the atomic rename. Where an S3-compatible server rejects ``If-Match``,
        a lock object is used instead (see :meth:`_replace_with_lock_object`).
        """
        if token is None:
            return self.write_bytes(relative, data, exclusive=True)
        if self.is_local:
            import fcntl

            target = self.path(relative)
            lock_path = os.path.join(os.path.dirname(target),
                                     f".tmp-lock-{os.path.basename(target)}")
            with open(lock_path, "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current, current_token = self.read_versioned(relative)
                    if current_token != token:
                        return False
                    self.write_bytes(relative, data)
                    return True
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        try:
            self.fs.call_s3("put_object", Body=data, IfMatch=token,
                            **self._bucket_key(relative))
            self.fs.invalidate_cache(self.path(relative))
            return True
        except OSError as error:
            text = str(error)
            if "PreconditionFailed" in text or "412" in text or "pre-conditions" in text \
                    or "ConditionalRequestConflict" in text or "409" in text:
                return False
            if "NotImplemented" in text or "501" in text or "InvalidArgument" in text:
                return self._replace_with_lock_object(relative, data, token=token,
                                                      lease_s=lease_s)
            raise

    def _replace_with_lock_object(self, relative: str, data: bytes, *, token: str,
                                  lease_s: float = 60.0) -> bool:
        """Compare-and-swap for servers without ``If-Match``: a lock object with a lease.

        ``<file>.lock`` is created with ``If-None-Match: *`` (create-if-absent) and holds
        its expiry time. Holders check the token, write, and delete the lock. A lock older
        than its lease (a crashed holder) is removed by the next writer. Returns ``False``
        when the lock is held or the token changed: the caller re-reads and retries.
        """
        import json
        import time

        lock = f"{relative}.lock"
        lease = json.dumps({"owner": uuid.uuid4().hex, "expires": time.time() + lease_s})
        if not self.write_bytes(lock, lease.encode(), exclusive=True):
            try:
                held = json.loads(self.read_bytes(lock))
            except (FileNotFoundError, ValueError):
                return False
            if held.get("expires", 0) < time.time():
                self.remove(lock)  # the holder died; its lease has run out
            return False
        try:
            _, current_token = self.read_versioned(relative)
            if current_token != token:
                return False
            self.write_bytes(relative, data)
            return True
        finally:
            self.remove(lock)

    def _bucket_key(self, relative: str) -> dict:
        bucket, _, key = self.path(relative).partition("/")
        return {"Bucket": bucket, "Key": key}

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


def _write_error(uri: str, error: Exception) -> OSError:
    """An OSError naming the file for a failed S3 write (after s3fs/botocore retries).

    botocore's connection errors are not OSErrors, and s3fs's translation keeps only the
    server's message; callers that catch OSError get one that says which file failed.
    """
    if isinstance(error, OSError) and uri in str(error):
        return error
    code = error.errno if isinstance(error, OSError) and error.errno else 5  # EIO
    return OSError(code, f"cannot write {uri} after retries ({type(error).__name__}: "
                         f"{error}); check the endpoint, bucket and credentials")


def _content_token(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _run_sync(fs: fsspec.AbstractFileSystem, coroutine):
    """Finish an aiobotocore coroutine on s3fs's own event loop."""
    from fsspec.asyn import sync

    return sync(fs.loop, lambda: coroutine)
