"""The fetcher's exception hierarchy.

Every error a user can cause or meet carries a message that names the culprit (model, file,
secret, repository) and, where one helps, a hint saying what to do. This module imports nothing
of the package so that every other module can use it.
"""

from __future__ import annotations


class FetcherError(Exception):
    """Base of every error the fetcher reports to the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ValuesError(FetcherError):
    """A values file cannot be read or breaks the schema."""


class ModelSpecError(FetcherError):
    """A model spec (name=...,uri=...) or a model URI is malformed."""


class ResolutionError(FetcherError):
    """A model URI names a repository or a source that is not configured."""


class SecretError(FetcherError):
    """A secret that applies is missing or unreadable. Never carries the secret's value."""


class DownloadError(FetcherError):
    """A transfer failed (network, HTTP status, TLS, S3)."""


class WriteError(DownloadError):
    """Fetched bytes could not be written here (a full volume, say): not the source's fault, and
    no reason to keep a half-done download that takes the room others need."""

    @classmethod
    def of(cls, what: str, exc: OSError) -> WriteError:
        full = exc.errno == 28  # ENOSPC
        return cls(f"{what}: {exc.strerror}",
                   hint="is the model repository's volume (emptyDir) large enough?" if full else None)


class ArchiveError(FetcherError):
    """An archive is corrupt, hostile or too large."""


class IntegrityError(FetcherError):
    """Fetched bytes are not what the source says they are (a checksum, a digest, a CRC or a size)."""


class ModelLayoutError(FetcherError):
    """The fetched content is not exactly one Triton model."""


class TooLargeError(DownloadError, ArchiveError):
    """A model is larger than --max-model-size: a download, an archive's content, a volume folder or an S3 prefix.

    Both a transfer and an archive error, so that either family's handler sees it.
    """

    def __init__(self, where: str, limit: int, *, size: int | None = None) -> None:
        amount = f"{size} bytes, more" if size is not None else "more"
        super().__init__(f"{where}: {amount} than the limit of {limit} bytes",
                         hint="raise --max-model-size if the model really is that large")


class MemberIntegrityError(ArchiveError, IntegrityError):
    """A zip member does not match its archive's records (CRC-32, size): both an archive and an integrity error."""


class InstallError(FetcherError):
    """The model could not be moved into the repository root."""


def os_reason(exc: BaseException) -> str | None:
    """The system's reason behind a network library's exception ("Connection refused", "Name or
    service not known"), found through its causes, contexts, ``reason`` and arguments. Never a URL
    or a server's text, which may carry tokens."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < 50:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.strerror, str) and current.strerror:
            return current.strerror
        kwargs = getattr(current, "kwargs", None)  # botocore keeps the underlying error there
        for inner in (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args,
                      *(kwargs.values() if isinstance(kwargs, dict) else ())):
            if isinstance(inner, BaseException):
                queue.append(inner)
    return None


class CacheError(FetcherError):
    """The shared model cache cannot be used (its folder, its lock, its index)."""
