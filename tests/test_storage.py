from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from ser_pipeline.storage import (
    Lease,
    LeaseLock,
    LocalStorage,
    S3Failure,
    S3Storage,
    Storage,
    StorageError,
    filesystem_for,
    safe_name,
)


def test_local_atomic_write_and_exclusive_create(tmp_path):
    store = Storage(str(tmp_path / "root"))
    assert store.write_bytes("a/b.bin", b"one")
    assert store.read_bytes("a/b.bin") == b"one"
    assert store.write_bytes("a/b.bin", b"two", exclusive=True) is False
    assert store.read_bytes("a/b.bin") == b"one"
    assert store.list("a") == ["a/b.bin"]
    assert not [p for p in (tmp_path / "root" / "a").iterdir() if p.name.startswith(".tmp-")]


def test_paths_cannot_escape_root(tmp_path):
    store = Storage(str(tmp_path))
    with pytest.raises(StorageError, match="escapes"):
        store.path("../outside")
    with pytest.raises(StorageError, match="escapes"):
        store.path("a/../../outside")


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", "..", ".hidden", "x" * 200])
def test_safe_name_rejects_escapes(name):
    with pytest.raises(ValueError, match="invalid"):
        safe_name(name)


def test_s3_roundtrip_and_conditional_put(s3_env):
    store = Storage(f"s3://{s3_env['bucket']}/root")
    assert store.write_bytes("x/y.txt", b"1", exclusive=True)
    assert store.write_bytes("x/y.txt", b"2", exclusive=True) is False
    assert store.read_bytes("x/y.txt") == b"1"
    assert store.list("x") == ["x/y.txt"]


def test_unsupported_scheme_is_named(tmp_path):
    with pytest.raises(StorageError, match="gs://b"):
        Storage("gs://b/lake")


# -- backends -------------------------------------------------------------------------------
def test_the_url_picks_the_backend(tmp_path, s3_env):
    local, file_url = Storage(str(tmp_path)), Storage(f"file://{tmp_path}")
    remote = Storage(f"s3://{s3_env['bucket']}/root/")
    assert isinstance(local, LocalStorage) and isinstance(file_url, LocalStorage)
    assert local.root == file_url.root == str(tmp_path.resolve()) and local.is_local
    assert isinstance(remote, S3Storage) and isinstance(remote, Storage)
    assert not remote.is_local and remote.url == f"s3://{s3_env['bucket']}/root"
    assert remote.uri("a/b") == f"s3://{s3_env['bucket']}/root/a/b"
    fs, root = filesystem_for(remote.url)
    assert root == f"{s3_env['bucket']}/root" and fs is remote.fs


def test_refresh_shows_what_another_client_wrote(s3_env, tmp_path):
    store = Storage(f"s3://{s3_env['bucket']}/root")
    store.write_bytes("models/m/1/manifest.json", b"{}")
    assert store.list_dirs("models/m") == ["1"]
    assert not store.fs.exists(store.path("models/m/2"))  # s3fs now caches the listing
    boto3_client(s3_env).put_object(Bucket=s3_env["bucket"], Key="root/models/m/2/manifest.json",
                                    Body=b"{}")
    store.refresh("models/m")
    assert store.fs.exists(store.path("models/m/2"))
    Storage(str(tmp_path)).refresh("anything")  # nothing is cached locally: a no-op, not an error


def boto3_client(s3_env):
    import boto3

    return boto3.client("s3", endpoint_url=s3_env["endpoint_url"], region_name="us-east-1",
                        aws_access_key_id="testing-key-id",
                        aws_secret_access_key="testing-secret-key")


# -- S3 answers by code and status ----------------------------------------------------------
def test_s3_failures_are_read_from_the_servers_answer(s3_env):
    store = Storage(f"s3://{s3_env['bucket']}/cas")
    store.write_bytes("alias.json", b"1")
    with pytest.raises(OSError) as stale:
        store.fs.call_s3("put_object", Body=b"x", IfMatch='"not-the-etag"',
                         **store._bucket_key("alias.json"))
    assert S3Failure.of(stale.value) == S3Failure(code="PreconditionFailed", status=412)
    assert S3Failure.of(stale.value).changed and not S3Failure.of(stale.value).unsupported
    with pytest.raises(FileNotFoundError) as gone:
        store.fs.call_s3("get_object", **store._bucket_key("nothing.json"))
    assert S3Failure.of(gone.value).missing_key
    assert S3Failure.of(OSError("412 PreconditionFailed")) is None  # words are not answers


def test_s3_compare_and_swap_on_real_answers(s3_env):
    store = Storage(f"s3://{s3_env['bucket']}/cas")
    assert store.replace_if_match("alias.json", b"1", token=None)
    assert not store.replace_if_match("alias.json", b"1b", token=None)  # exists: 412
    _, token = store.read_versioned("alias.json")
    assert store.replace_if_match("alias.json", b"2", token=token)
    assert not store.replace_if_match("alias.json", b"3", token=token)  # stale ETag: 412
    _, token = store.read_versioned("alias.json")
    store.remove("alias.json")
    assert not store.replace_if_match("alias.json", b"4", token=token)  # deleted: 404
    assert not store.exists("alias.json")


def test_lease_fallback_compare_and_swap_on_s3(s3_env):
    """The swap servers without ``If-Match`` get (tests/reliability drives it through a
    server that answers 501)."""
    store = Storage(f"s3://{s3_env['bucket']}/cas")
    store.write_bytes("alias.json", b"1")
    _, token = store.read_versioned("alias.json")
    assert store._swap_under_lease("alias.json", b"2", token=token, lease_s=60)
    assert not store._swap_under_lease("alias.json", b"3", token=token, lease_s=60)  # stale
    assert store.read_bytes("alias.json") == b"2" and not store.exists("alias.json.lock")
    _, token = store.read_versioned("alias.json")
    holder = LeaseLock(store, "alias.json.lock")
    assert holder.try_acquire()  # a live writer holds the lock
    assert not store._swap_under_lease("alias.json", b"4", token=token, lease_s=60)
    holder.release()
    store.write_bytes("alias.json.lock", b'{"owner": "dead", "expires": 0}')  # old format
    assert store._swap_under_lease("alias.json", b"4", token=token, lease_s=60)
    assert store.read_bytes("alias.json") == b"4" and not store.exists("alias.json.lock")


# -- the lease lock ------------------------------------------------------------------------
@pytest.fixture(params=["local", "s3"])
def any_storage(request, tmp_path):
    if request.param == "local":
        return Storage(str(tmp_path / "root"))
    s3_env = request.getfixturevalue("s3_env")
    return Storage(f"s3://{s3_env['bucket']}/root")


def test_lease_lock_excludes_and_only_its_holder_releases(any_storage):
    first, second = LeaseLock(any_storage, "l/x.lock"), LeaseLock(any_storage, "l/x.lock")
    assert first.try_acquire() and not second.try_acquire()
    second.release()  # not the holder: nothing happens
    assert any_storage.exists("l/x.lock") and not second.try_acquire()
    first.release()
    assert not any_storage.exists("l/x.lock")
    with second:
        assert not first.try_acquire()
    assert first.try_acquire()


def test_lease_lock_breaks_expired_and_dead_holders_only(any_storage):
    lock = LeaseLock(any_storage, "x.lock", lease_s=60)
    expired = Lease(token="old", pid=0, host="elsewhere", at=0.0, expires=1.0)
    any_storage.write_bytes("x.lock", expired.to_bytes())
    assert lock.try_acquire()  # broken and taken in one call
    lock.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = Lease(token="gone", pid=int(dead.stdout), host=socket.gethostname(), at=time.time(),
                 expires=time.time() + 3600)
    any_storage.write_bytes("x.lock", gone.to_bytes())
    assert lock.try_acquire()  # its owner exited on this host: no need to wait an hour
    lock.release()
    alive = Lease(token="alive", pid=0, host="another-host", at=time.time(),
                  expires=time.time() + 3600)
    any_storage.write_bytes("x.lock", alive.to_bytes())
    assert not lock.try_acquire()
    assert Lease.parse(any_storage.read_bytes("x.lock"), lease_s=60) == alive


def test_lease_lock_wait_ends_in_an_error_naming_the_lock(tmp_path):
    store = Storage(str(tmp_path))
    LeaseLock(store, "busy.lock").acquire()
    waiting = LeaseLock(store, "busy.lock", wait_s=0.1, what="labels commit lock")
    with pytest.raises(TimeoutError, match=r"labels commit lock .*busy\.lock held for over"):
        waiting.acquire()


def test_lease_lock_claims_its_own_landed_create(tmp_path):
    """A create whose answer was lost comes back as "exists" on retry: the lock object then
    holds this lock's own token, and the lock is held, not waited for."""
    store = Storage(str(tmp_path))
    lock = LeaseLock(store, "x.lock")
    store.write_bytes("x.lock", Lease(token=lock.token, pid=os.getpid(), host="h", at=0.0,
                                      expires=time.time() + 60).to_bytes())
    assert lock.try_acquire()
    lock.release()
    assert not store.exists("x.lock")


def test_labeling_commits_wait_for_the_shared_lease(tmp_path):
    from ser_pipeline.label import LOCK_STALE_S, commit_labels, commit_lock, commit_lock_path
    from ser_pipeline.lake import Lake, utcnow

    lake = Lake.open(str(tmp_path / "lake"))
    lock = commit_lock(lake, "t")
    assert isinstance(lock, LeaseLock) and lock.lease_s == LOCK_STALE_S
    row = {"audio_id": "a", "teacher_id": "t", "teacher_sha256": "s", "arousal": 0.1,
           "dominance": 0.2, "valence": 0.3, "n_windows": 1, "labeled_at": utcnow(),
           "run_id": "r"}
    holder = LeaseLock(lake.storage, commit_lock_path("t"))
    assert holder.try_acquire()
    done = []
    writer = threading.Thread(target=lambda: done.append(commit_labels(lake, [row],
                                                                       teacher_id="t")))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and not lake.parts("teacher_labels")  # waiting for the lease
    holder.release()
    writer.join(60)
    assert done == [1] and lake.count("teacher_labels") == 1
    assert not lake.storage.exists(commit_lock_path("t"))
