"""The S3 backend: ``s3://bucket/prefix`` through s3fs (AWS or any S3-compatible server).

A single PUT lands whole or not at all, so writes need no temporary name. Create-if-absent
is a conditional PUT (``If-None-Match: *``), compare-and-swap is ``If-Match: <etag>``.
Server answers are recognised by the botocore error code and HTTP status that s3fs keeps
as the ``__cause__`` of the ``OSError`` it raises (see :class:`S3Failure`), never by the
words of a message.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fsspec

from ser_pipeline.storage.base import Storage
from ser_pipeline.storage.lease import LeaseLock

#: Codes and statuses meaning "the object is not the version you named" (412), or that a
#: concurrent conditional write on the key won (409): re-read and retry.
_CHANGED_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_CHANGED_STATUSES = frozenset({409, 412})
#: Codes of servers that do not implement a conditional header (the lease lock stands in).
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "InvalidArgument"})


@dataclass(frozen=True)
class S3Failure:
    """The S3 error code and HTTP status behind an exception, when a server answered.

    Examples:
        >>> from botocore.exceptions import ClientError
        >>> answer = {"Error": {"Code": "PreconditionFailed", "Message": "no"},
        ...           "ResponseMetadata": {"HTTPStatusCode": 412}}
        >>> translated = OSError(5, "no")  # what s3fs raises ...
        >>> translated.__cause__ = ClientError(answer, "PutObject")  # ... from the answer
        >>> failure = S3Failure.of(translated)
        >>> failure, failure.changed, failure.unsupported
        (S3Failure(code='PreconditionFailed', status=412), True, False)
        >>> S3Failure.of(ConnectionResetError()) is None  # no answer at all
        True
    """

    code: str | None
    status: int | None

    @classmethod
    def of(cls, error: BaseException) -> S3Failure | None:
        """Find the server's answer in ``error`` or the exceptions it was raised from."""
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            response = getattr(current, "response", None)
            if isinstance(response, dict) and ("Error" in response
                                               or "ResponseMetadata" in response):
                status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                return cls(code=(response.get("Error") or {}).get("Code") or None,
                           status=int(status) if status is not None else None)
            current = current.__cause__ or current.__context__
        return None

    @property
    def changed(self) -> bool:
        """The condition did not hold: the object changed (or appeared) since it was read."""
        return self.code in _CHANGED_CODES or self.status in _CHANGED_STATUSES

    @property
    def unsupported(self) -> bool:
        """The server does not implement the conditional request."""
        return self.code in _UNSUPPORTED_CODES or self.status == 501

    @property
    def missing_key(self) -> bool:
        """The object does not exist (its bucket does)."""
        return self.code == "NoSuchKey" or (self.status == 404 and self.code != "NoSuchBucket")


class S3Storage(Storage, scheme="s3"):
    """An ``s3://bucket/prefix`` root, through s3fs with the settings' endpoint and
    credentials (bounded retries and timeouts: ``Settings.s3_options``)."""

    is_local = False

    def __init__(self, url: str, **kwargs) -> None:
        super().__init__(url.rstrip("/"), **kwargs)

    def _connect(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        import s3fs

        return s3fs.S3FileSystem(**self.settings.s3_options()), url[len("s3://"):]

    def uri(self, relative: str = "") -> str:
        return f"s3://{self.path(relative)}"

    def _write(self, relative: str, data: bytes, *, exclusive: bool) -> bool:
        target = self.path(relative)
        try:
            if not exclusive:
                self.fs.pipe_file(target, data)
                return True
            try:
                self.fs.pipe_file(target, data, mode="create")
            except FileExistsError:  # s3fs's name for 412 on If-None-Match
                return False
            except OSError as error:
                failure = S3Failure.of(error)  # a 412 without the condition named
                if failure is not None and (failure.code == "PreconditionFailed"
                                            or failure.status == 412):
                    return False
                raise
            return True
        except Exception as error:
            raise _write_error(self.uri(relative), error) from error

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """``(content, token)``; the token is the object's ETag."""
        try:
            response = self.fs.call_s3("get_object", **self._bucket_key(relative))
        except FileNotFoundError:
            return None, None
        data = _run_sync(self.fs, response["Body"].read())
        return data, response["ETag"]

    def _swap(self, relative: str, data: bytes, *, token: str, lease_s: float) -> bool:
        try:
            self.fs.call_s3("put_object", Body=data, IfMatch=token, **self._bucket_key(relative))
        except OSError as error:
            failure = S3Failure.of(error)
            if failure is None:
                raise
            if failure.changed or failure.missing_key:  # deleted since read: changed too
                return False
            if failure.unsupported:
                return self._swap_under_lease(relative, data, token=token, lease_s=lease_s)
            raise
        self.refresh(relative)
        return True

    def _swap_under_lease(self, relative: str, data: bytes, *, token: str,
                          lease_s: float) -> bool:
        """Compare-and-swap for servers without ``If-Match``: check and write while holding
        the :class:`LeaseLock` ``<file>.lock``. ``False`` when the lock is held by a live
        writer or the token changed: the caller re-reads and retries."""
        lock = LeaseLock(self, f"{relative}.lock", lease_s=lease_s)
        if not lock.try_acquire():
            return False
        try:
            return self._write_if_current(relative, data, token=token)
        finally:
            lock.release()

    def refresh(self, relative: str = "") -> None:
        """Drop s3fs's cached listing of ``relative`` (another process may have written)."""
        self.fs.invalidate_cache(self.path(relative))

    @contextmanager
    def local_copy(self, relative: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / posixpath.basename(relative)
            self.fs.get(self.path(relative), str(local))
            yield local

    def _bucket_key(self, relative: str) -> dict[str, str]:
        bucket, _, key = self.path(relative).partition("/")
        return {"Bucket": bucket, "Key": key}


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


def _run_sync(fs: fsspec.AbstractFileSystem, coroutine):
    """Finish an aiobotocore coroutine on s3fs's own event loop."""
    from fsspec.asyn import sync

    return sync(fs.loop, lambda: coroutine)
