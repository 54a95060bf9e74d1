"""The ``ser`` command line. Each stage registers its commands from its own module."""

from __future__ import annotations

import importlib
import pkgutil

from ser_pipeline.cli.common import app

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "common":
        importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    app()


__all__ = ["app", "main"]
