"""The analyst database's error (its own module, so every part can raise it)."""

class DatabaseError(RuntimeError):
    """The analyst database cannot be built or opened; the message says what to do."""
