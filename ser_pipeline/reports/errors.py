"""The reports' error (its own module, so every part can raise it)."""

class ReportError(ValueError):
    """A report cannot run as asked; the message says what to change."""
