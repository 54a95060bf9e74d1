"""The registry's errors, and keeping credentials out of every message it writes."""

from __future__ import annotations

import re

from ser_pipeline.config import Settings


class RegistryError(RuntimeError):
    """A registry operation failed; the message says what and how to fix it."""


class ModelNotFoundError(RegistryError):
    """No such model name or version in the registry."""


class VersionExistsError(RegistryError):
    """The requested version is already taken (versions are never overwritten)."""


class IntegrityError(RegistryError):
    """A file's sha256 does not match its manifest; the message names the file."""


def redact(text: str, settings: Settings | None = None) -> str:
    """Remove credentials from a message: ``user:pass@`` in URLs and known secret values.

    Examples:
        >>> redact("s3://key:secret@bucket/registry failed")
        's3://***@bucket/registry failed'
    """
    text = re.sub(r"(://)[^/@\s]+@", r"\1***@", str(text))
    if settings is not None:
        for secret in (settings.aws_secret_access_key, settings.aws_session_token,
                       settings.aws_access_key_id):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
    return text
