"""The export's errors (a module of their own so every export module can raise them)."""

from __future__ import annotations

from typing import Any


class ExportError(RuntimeError):
    """The model could not be exported or quantised; the message names the step."""


class ParityError(ExportError):
    """ONNX fp32 disagrees with torch; ``parity`` holds the numbers (a ``Parity`` record)."""

    def __init__(self, message: str, parity: Any) -> None:
        super().__init__(message)
        self.parity = parity
