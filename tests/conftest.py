"""Shared fixtures: real servers on localhost, temporary lakes, a Prefect test harness."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="ser-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SER_PROGRESS", "0")
# Keep the test suite off any real cloud account.
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "SER_S3_ENDPOINT_URL",
             "SER_LAKE", "SER_REGISTRY", "SER_DASK_ADDRESS"):
    os.environ.pop(_var, None)

# Prefect binds its console log handler to the sys.stderr of the moment it is first imported.
# Importing it here, under pytest's session-wide capture, keeps that stream open for the
# whole run; a first import inside a capsys or CliRunner test binds a stream that closes
# after that test, and every later flow's logging then fails (RecursionError on Dask).
import prefect  # noqa: E402,F401

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free localhost port; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """Point the settings at the moto server with throwaway credentials and a fresh bucket."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SER_S3_ENDPOINT_URL", moto_server)
    bucket = f"ser-test-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=moto_server, region_name="us-east-1",
        aws_access_key_id="testing-key-id", aws_secret_access_key="testing-secret-key",
    ).create_bucket(Bucket=bucket)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield {"endpoint_url": moto_server, "bucket": bucket}
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture()
def lake_url(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness per session (it costs ~12 s); only flow tests use it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
