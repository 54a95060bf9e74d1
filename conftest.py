"""Environment for everything pytest runs: the tests under tests/ and the doctests of
ser_pipeline/ (collected by ``--doctest-modules``, see pyproject.toml).

It lives at the repository root so that both get it; the fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import os
import tempfile

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set before this import on xdist workers
if _WORKER:
    # Each worker starts its own ephemeral Prefect server: they must not share one SQLite
    # database (the controller's PREFECT_HOME is inherited, so it is replaced here).
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"ser-prefect-home-{_WORKER}-")
else:
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

# rich fixes a Console's width for good when COLUMNS is set at the moment it is made. The
# CLI's consoles are module globals, made on first import: make them here, with COLUMNS
# unset, so that each test's monkeypatched COLUMNS is read when it prints, whichever test
# (on whichever xdist worker) happens to import the CLI first.
os.environ.pop("COLUMNS", None)
import ser_pipeline.cli.common  # noqa: E402,F401

#: Scripts, not tests: --doctest-modules would import them (tests/data/make_fixtures.py
#: needs espeak-ng's demo module and has no tests or examples).
collect_ignore = ["tests/data"]
