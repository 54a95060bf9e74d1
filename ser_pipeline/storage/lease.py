"""A lease lock: a small lock object in a storage root, shared by every backend.

The lock is a file created with an exclusive create (``If-None-Match: *`` on S3, a hard
link locally) holding who took it and until when. Its holder deletes it; a holder that
died leaves it behind, and the next taker breaks it once its lease has run out, or at once
when the holder was a process on this host that no longer exists. Labeling's commit lock
and the registry's compare-and-swap on servers without ``If-Match`` both use it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass

from ser_pipeline.storage.base import Storage


@dataclass(frozen=True)
class Lease:
    """What a lock object holds."""

    token: str
    pid: int
    host: str
    at: float  # when it was taken (seconds since the epoch)
    expires: float  # when others may break it

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def parse(cls, data: bytes, *, lease_s: float) -> Lease | None:
        """The lease in ``data``, or ``None`` when it is not one.

        Lock objects written before the shared lock (``{"owner", "expires"}`` by the
        registry, ``{"token", "pid", "host", "at"}`` by labeling) still parse.

        Examples:
            >>> Lease.parse(b'{"token": "t", "pid": 1, "host": "h", "at": 5.0}', lease_s=60)
            Lease(token='t', pid=1, host='h', at=5.0, expires=65.0)
            >>> Lease.parse(b"garbage", lease_s=60) is None
            True
        """
        try:
            payload = json.loads(data)
            at = float(payload.get("at", 0.0))
            expires = float(payload["expires"]) if "expires" in payload else at + lease_s
            return cls(token=str(payload.get("token", payload.get("owner", ""))),
                       pid=int(payload.get("pid", 0)), host=str(payload.get("host", "")),
                       at=at, expires=expires)
        except (ValueError, TypeError, AttributeError, KeyError):
            return None

    def is_stale(self, *, now: float) -> bool:
        """Whether the holder is gone: the lease ran out, or the holder was a process on
        this host that has exited."""
        if self.expires < now:
            return True
        if self.pid > 0 and self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except (PermissionError, OSError):  # alive under another user, or unknowable
                return False
        return False


class LeaseLock:
    """A lock object at ``path`` in ``storage`` (use as a context manager to wait for it).

    Args:
        storage: where the lock object lives (local or S3).
        path: root-relative path of the lock object.
        lease_s: how long a holder may keep it before others may break it.
        wait_s: how long :meth:`acquire` waits before raising :class:`TimeoutError`.
        what: names the lock in the timeout message.

    Examples:
        >>> import tempfile
        >>> from ser_pipeline.storage import Storage
        >>> store = Storage(tempfile.mkdtemp())
        >>> first, second = LeaseLock(store, "x.lock"), LeaseLock(store, "x.lock")
        >>> first.try_acquire(), second.try_acquire()
        (True, False)
        >>> first.release(); second.try_acquire()
        True
    """

    def __init__(self, storage: Storage, path: str, *, lease_s: float = 60.0,
                 wait_s: float = 300.0, what: str = "lock") -> None:
        self.storage = storage
        self.path = path
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.what = what
        self.token = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"LeaseLock({self.storage.uri(self.path)!r})"

    def try_acquire(self) -> bool:
        """Take the lock if it is free or its holder is gone; never waits."""
        for _ in range(2):  # once more after breaking a stale lease
            now = time.time()
            lease = Lease(token=self.token, pid=os.getpid(), host=socket.gethostname(),
                          at=now, expires=now + self.lease_s)
            if self.storage.write_bytes(self.path, lease.to_bytes(), exclusive=True):
                return True
            try:
                held = self.storage.read_bytes(self.path)
            except FileNotFoundError:
                continue  # released in between: try again
            holder = Lease.parse(held, lease_s=self.lease_s)
            if holder is not None and holder.token == self.token:
                return True  # our create landed but its answer was lost (then 412 on retry)
            if holder is not None and not holder.is_stale(now=time.time()):
                return False
            self._break(held)  # stale, or no lease at all (writes are whole: no live holder)
        return False

    def acquire(self) -> LeaseLock:
        """Wait (with backoff) until the lock is taken.

        Raises:
            TimeoutError: another live holder kept it for over ``wait_s``.
        """
        deadline = time.monotonic() + self.wait_s
        delay = 0.02
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.what} {self.storage.uri(self.path)} held for over "
                                   f"{self.wait_s:.0f} s by {self._holder()}; delete it if "
                                   "that process is gone")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return self

    def release(self) -> None:
        """Delete the lock object if this lock still holds it (never someone else's)."""
        try:
            holder = Lease.parse(self.storage.read_bytes(self.path), lease_s=self.lease_s)
        except FileNotFoundError:
            return
        if holder is not None and holder.token == self.token:
            self.storage.remove(self.path)

    def __enter__(self) -> LeaseLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _break(self, judged: bytes) -> None:
        """Remove the lock object judged stale, but not a newer one taken meanwhile."""
        try:
            if self.storage.read_bytes(self.path) == judged:
                self.storage.remove(self.path)
        except FileNotFoundError:
            pass

    def _holder(self) -> str:
        try:
            return self.storage.read_bytes(self.path).decode(errors="replace")
        except FileNotFoundError:
            return "nobody (released)"
