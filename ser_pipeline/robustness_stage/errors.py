"""The robustness stage's error (its own module, so every part can raise it)."""

class RobustnessError(ValueError):
    """The robustness suite cannot run as asked; the message says what to change."""
