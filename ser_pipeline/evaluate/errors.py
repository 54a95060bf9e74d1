"""The evaluation's error (a module of its own so every evaluate module can raise it)."""

from __future__ import annotations


class EvaluateError(RuntimeError):
    """The evaluation cannot run; the message names the model/corpus and the fix."""
