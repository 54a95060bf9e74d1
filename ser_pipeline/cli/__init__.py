"""The ``ser`` command line. Each stage registers its commands from its own module."""

from __future__ import annotations

import atexit
import importlib
import os
import pkgutil
import sys
import traceback

from ser_pipeline.cli.common import app

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "common":
        importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    code = 1
    try:
        _dispatch()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - show the traceback, then exit like Python would
        traceback.print_exc()
        code = 1
    finally:
        _exit_without_native_teardown(code)


def _exit_without_native_teardown(code: int) -> None:
    """Run Python's exit handlers, then leave without CPython's native finalisation.

    Why: with torch's native thread pools alive, interpreter teardown occasionally aborts
    with "terminate called without an active exception" (SIGABRT) after a command has
    finished; the reliability suite saw it once in a few hundred `ser label` runs. By this
    point every lake/registry write has completed atomically, so nothing is lost, but the
    exit code would be wrong. atexit handlers still run (Prefect stops its ephemeral
    server, logging flushes); only the native static destructors are skipped.
    """
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _dispatch() -> None:
    try:
        app()
    except Exception as error:
        if not _is_storage_error(error):
            raise
        # Storage that stays unreachable after the bounded retries (settings.s3_*): one
        # line instead of a traceback. Finished shards are kept, so re-running is safe.
        from rich.markup import escape

        from ser_pipeline.cli.common import err_console
        from ser_pipeline.registry import redact

        err_console.print(
            f"[bold red]error:[/] storage failed after retries ({type(error).__name__}: "
            f"{escape(redact(str(error), app_settings()))}); check the endpoint "
            "(SER_S3_ENDPOINT_URL), bucket and credentials, then run the same command "
            "again: completed work is kept", highlight=False, soft_wrap=True, markup=True)
        raise SystemExit(1) from None


def _is_storage_error(error: BaseException) -> bool:
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        BotoCoreError = ()  # noqa: N806
    return isinstance(error, (OSError, BotoCoreError))


def app_settings():
    from ser_pipeline.config import get_settings

    try:
        return get_settings()
    except Exception:  # noqa: BLE001 - only used to redact a message
        return None


__all__ = ["app", "main"]
