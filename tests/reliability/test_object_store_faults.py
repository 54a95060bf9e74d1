"""Object-store faults: a fault-injecting proxy between s3fs and the moto server.

Moderate fault rates (500, 503, resets before and after the server applied the request,
stalls longer than the read timeout) must be absorbed by retries: publishes and lake writes
succeed, nothing is lost or duplicated. A 100% fault rate must end in a clear error within
a bounded time. In every case ``latest`` points only at a complete, hash-verified version,
and every listed Parquet part reads fully.
"""

from __future__ import annotations

import subprocess
import threading

import pyarrow.compute as pc
import pytest
import s3fs

from ser_pipeline.config import get_settings
from ser_pipeline.ingest import ingest
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.registry import Registry, RegistryError
from ser_pipeline.storage import LeaseLock, Storage

from .conftest import (
    SER,
    check_lake_parts,
    check_registry,
    cli_env,
    direct_settings,
    write_wavs,
)
from .faultproxy import FaultProxy
from .report import record

SUITE = "object-store faults"
pytestmark = pytest.mark.slow
# Small attempt counts keep the 100% cases short; the moderate cases still retry enough.
FAST_TIMEOUTS = {"SER_S3_READ_TIMEOUT": "0.5", "SER_S3_CONNECT_TIMEOUT": "2"}


@pytest.fixture()
def proxied(s3_env, monkeypatch):
    """Yield a started FaultProxy (rate 0) with the settings pointing at it."""
    with FaultProxy(s3_env["endpoint_url"], rate=0.0, seed=7, stall_s=1.0) as proxy:
        monkeypatch.setenv("SER_S3_ENDPOINT_URL", proxy.url)
        for key, value in FAST_TIMEOUTS.items():
            monkeypatch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        yield {**s3_env, "proxy": proxy}
        s3fs.S3FileSystem.clear_instance_cache()


def _bounded(fn, *, limit_s: float = 180.0):
    """Run ``fn`` in a thread; fail the test if it has not returned within ``limit_s``
    (a hang detector, not a timing assertion). Returns ``(result, exception)``."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"no answer within {limit_s} s: the call hangs"
    return box.get("result"), box.get("error")


def test_publish_survives_moderate_faults(exported, proxied, tmp_path):  # noqa: F811
    proxy = proxied["proxy"]
    url = f"s3://{proxied['bucket']}/registry"
    registry = Registry(url, settings=get_settings(db=str(tmp_path / "ser.duckdb")))
    proxy.set_rate(0.3)
    published = []
    # the second publish sees only lost responses and late requests (writes that landed
    # although the client saw a failure)
    for kinds in (proxy.kinds, ("reset_after", "stall")):
        proxy.kinds = kinds
        manifest = registry.publish(exported["result"], name="faulty", record_db=False)
        published.append(manifest.version)
    proxy.set_rate(0.0)
    truth = check_registry(Storage(url, settings=direct_settings(proxied["endpoint_url"])))
    state = truth["faulty"]
    assert set(published) <= set(state["complete"]) and len(set(published)) == 2
    assert state["latest"] == max(published)
    assert proxy.faults_injected > 0
    record(SUITE, test="publish at 30% faults", trials=len(published),
           faults=proxy.faults_injected, lost=0, duplicated=0,
           requests=proxy.requests, by_kind=dict(proxy.faults),
           incomplete_versions=len(state["incomplete"]))


def test_publish_fails_clearly_at_full_fault_rate(exported, proxied, tmp_path,  # noqa: F811
                                                  monkeypatch):
    proxy = proxied["proxy"]
    url = f"s3://{proxied['bucket']}/registry"
    registry = Registry(url, settings=get_settings(db=str(tmp_path / "ser.duckdb")))
    first = registry.publish(exported["result"], name="dead", record_db=False)
    faults_before = proxy.faults_injected
    monkeypatch.setenv("SER_S3_MAX_ATTEMPTS", "1")  # s3fs still retries connection errors
    for kinds in (("500",), ("reset",), ("stall",)):
        s3fs.S3FileSystem.clear_instance_cache()
        proxy.kinds, proxy.rate = kinds, 1.0
        broken = Registry(url, settings=get_settings(db=str(tmp_path / "ser.duckdb")))
        _, error = _bounded(lambda broken=broken: broken.publish(
            exported["result"], name="dead", record_db=False))
        assert isinstance(error, RegistryError), (kinds, repr(error))
        text = str(error)
        assert "cannot be written" in text and "check the URL, bucket and credentials" in text
        assert "testing-secret-key" not in text
    proxy.rate = 0.0
    truth = check_registry(Storage(url, settings=direct_settings(proxied["endpoint_url"])))
    assert truth["dead"]["latest"] == first.version == truth["dead"]["complete"][-1]
    record(SUITE, test="publish at 100% faults (3 kinds)", trials=3,
           faults=proxy.faults_injected - faults_before, lost=0, duplicated=0)


def test_lake_writes_and_ingest_survive_moderate_faults(proxied, tmp_path):
    wav_folder = tmp_path / "wavs"
    write_wavs(wav_folder, 20, seed=1)
    proxy = proxied["proxy"]
    url = f"s3://{proxied['bucket']}/lake"
    lake = Lake.open(url)
    proxy.set_rate(0.2)
    rows = []
    for index in range(6):
        rows.append([{"corpus": "faults", "source_path": f"f{index}-{j}.wav", "audio_id": None,
                      "stage": "test", "reason": "test", "message": "m",
                      "quarantined_at": utcnow()} for j in range(5)])
        lake.write_part("quarantine", rows[-1], key=content_key("faults", index))
    for index in range(6):  # a retried writer: the same parts again add nothing
        lake.write_part("quarantine", rows[index], key=content_key("faults", index))
    summary = ingest(lake, str(wav_folder), corpus="faulty", shard_size=5)
    again = ingest(lake, str(wav_folder), corpus="faulty", shard_size=5)
    proxy.set_rate(0.0)
    truth = Lake.open(url, settings=direct_settings(proxied["endpoint_url"]))
    counts = check_lake_parts(truth)
    ids = truth.read("audio", columns=["audio_id"]).column("audio_id")
    duplicated = len(ids) - len(pc.unique(ids))
    lost = 20 - len(pc.unique(ids))
    assert counts["quarantine"] == 30 and counts["audio"] == 20
    assert duplicated == 0 and lost == 0
    assert summary["ingested"] + again["ingested"] == 20 and again["ingested"] == 0
    assert proxy.faults_injected > 0
    record(SUITE, test="lake writes + ingest at 20% faults", trials=12 + 2,
           faults=proxy.faults_injected, lost=lost, duplicated=duplicated,
           requests=proxy.requests, by_kind=dict(proxy.faults))


def test_lake_write_fails_clearly_at_full_fault_rate(proxied, monkeypatch):
    proxy = proxied["proxy"]
    url = f"s3://{proxied['bucket']}/lake"
    monkeypatch.setenv("SER_S3_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    lake = Lake.open(url)
    row = [{"corpus": "x", "source_path": "a.wav", "audio_id": None, "stage": "t",
            "reason": "t", "message": "m", "quarantined_at": utcnow()}]
    proxy.kinds, proxy.rate = ("500", "reset", "stall"), 1.0
    for attempt in range(2):
        _, error = _bounded(lambda attempt=attempt: lake.write_part(
            "quarantine", row, key=content_key("dead", attempt)))
        # Storage names the part that could not be written
        assert isinstance(error, OSError), repr(error)
        assert "cannot write s3://" in str(error) and "quarantine/part-" in str(error)
    proxy.rate = 0.0
    truth = Lake.open(url, settings=direct_settings(proxied["endpoint_url"]))
    # A stalled PUT may still land after the client gave up; if so it is whole.
    assert check_lake_parts(truth)["quarantine"] <= 2
    record(SUITE, test="lake write at 100% faults", trials=2, faults=proxy.faults_injected,
           lost=0, duplicated=0)


def test_cli_fails_in_one_line_at_full_fault_rate(proxied, tmp_path):
    """``ser ingest`` into an S3 lake whose every request fails: exit 1 and one line."""
    proxy = proxied["proxy"]
    write_wavs(tmp_path / "wavs", 3, seed=2)
    proxy.kinds, proxy.rate = ("500", "reset", "stall"), 1.0
    env = cli_env(AWS_ACCESS_KEY_ID="testing-key-id", AWS_SECRET_ACCESS_KEY="testing-secret-key",
                  AWS_DEFAULT_REGION="us-east-1", SER_S3_ENDPOINT_URL=proxy.url,
                  SER_S3_MAX_ATTEMPTS="1", **FAST_TIMEOUTS)
    result = subprocess.run([*SER, "ingest", str(tmp_path / "wavs"), "--corpus", "dead",
                             "--lake", f"s3://{proxied['bucket']}/lake", "--engine", "local"],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: storage failed after retries")
    assert "run the same command again" in result.stderr
    assert "testing-secret-key" not in result.stderr + result.stdout
    record(SUITE, test="CLI at 100% faults", trials=1, faults=proxy.faults_injected, lost=0,
           duplicated=0)


@pytest.mark.parametrize(("status", "code"), [(501, "NotImplemented"), (400, "InvalidArgument")])
def test_compare_and_swap_without_if_match_uses_the_lease_lock(proxied, status, code):
    """A server that does not implement ``If-Match`` on PUT: the swap falls back to the
    lease lock object and keeps its guarantees (stale tokens lose, no lock is left)."""
    proxy = proxied["proxy"]
    proxy.refuse("If-Match", status=status, code=code, message="conditional PUT unsupported")
    store = Storage(f"s3://{proxied['bucket']}/cas")
    assert store.replace_if_match("alias.json", b"1", token=None)  # a create: If-None-Match
    _, token = store.read_versioned("alias.json")
    assert store.replace_if_match("alias.json", b"2", token=token)
    assert not store.replace_if_match("alias.json", b"3", token=token)  # stale token
    assert store.read_bytes("alias.json") == b"2" and not store.exists("alias.json.lock")
    assert proxy.faults["refused"] == 2  # each swap tried If-Match first
    _, token = store.read_versioned("alias.json")
    holder = LeaseLock(store, "alias.json.lock")
    assert holder.try_acquire()
    assert not store.replace_if_match("alias.json", b"4", token=token)  # a live writer
    holder.release()
    assert store.replace_if_match("alias.json", b"4", token=token)
    record(SUITE, test=f"compare-and-swap, If-Match answered {status}", trials=4,
           faults=proxy.faults["refused"], lost=0, duplicated=0)


def test_conditional_answers_are_read_by_code_not_by_message(proxied):
    proxy = proxied["proxy"]
    store = Storage(f"s3://{proxied['bucket']}/cas")
    store.write_bytes("alias.json", b"1")
    _, token = store.read_versioned("alias.json")
    # a concurrent conditional write won (409), in words that name no condition
    proxy.refuse("If-Match", status=409, code="ConditionalRequestConflict",
                 message="please try again")
    assert store.replace_if_match("alias.json", b"2", token=token) is False
    # words that look like a lost race, from an answer that is not one: raised, not hidden
    proxy.refuse("If-Match", status=403, code="AccessDenied",
                 message="PreconditionFailed 412 409 NotImplemented 501")
    with pytest.raises(PermissionError):
        store.replace_if_match("alias.json", b"2", token=token)
    assert store.read_bytes("alias.json") == b"1" and not store.exists("alias.json.lock")


def test_publish_to_a_server_without_if_match(exported, proxied, tmp_path):  # noqa: F811
    proxy = proxied["proxy"]
    proxy.refuse("If-Match", status=501, code="NotImplemented")
    url = f"s3://{proxied['bucket']}/registry"
    registry = Registry(url, settings=get_settings(db=str(tmp_path / "ser.duckdb")))
    versions = [registry.publish(exported["result"], name="nocas", record_db=False).version
                for _ in range(2)]
    truth = Storage(url, settings=direct_settings(proxied["endpoint_url"]))
    state = check_registry(truth)["nocas"]
    assert versions == [1, 2] and state["latest"] == 2 and state["complete"] == [1, 2]
    assert proxy.faults["refused"] >= 1  # the second latest.json swap met the 501
    assert not truth.exists("models/nocas/latest.json.lock")
    record(SUITE, test="publish, If-Match answered 501", trials=2,
           faults=proxy.faults["refused"], lost=0, duplicated=0)
