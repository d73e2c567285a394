"""Secrets mounted as files: ``<secrets-dir>/<secretName>/<key>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fetcher.errors import SecretError

MAX_SECRET_BYTES = 64 * 1024


class SecretValue:
    """A secret's content. It prints as a placeholder; only ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SecretStore:
    """The folder where the pod mounts each secret as a folder of files."""

    root: Path

    def read(self, secret_name: str) -> SecretValue:
        """Read a one-key secret. The key is normally named like the secret; a lone other key is accepted."""
        folder = self.root / secret_name
        if not folder.is_dir():
            raise SecretError(
                f"secret {secret_name!r} is not mounted (no folder {str(folder)!r})",
                hint=f"create it with 'kubectl create secret generic {secret_name} --from-file {secret_name}'",
            )
        path = folder / secret_name
        if not path.is_file():
            keys = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".."))
            if len(keys) != 1:
                raise SecretError(
                    f"secret {secret_name!r} has no key {secret_name!r}"
                    + (f" and several others ({', '.join(keys)})" if keys else " and no other key"),
                    hint="the secret must hold one key, normally named like the secret",
                )
            path = folder / keys[0]
        try:
            data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
        except OSError as exc:
            raise SecretError(f"secret {secret_name!r}: cannot read {str(path)!r}: {exc.strerror}") from None
        if len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"secret {secret_name!r} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret {secret_name!r} is not UTF-8 text") from None
        # `kubectl create secret --from-file` keeps the file's trailing newline; a header cannot carry it.
        text = text.strip()
        if not text:
            raise SecretError(f"secret {secret_name!r} is empty")
        if any(ch in text for ch in "\r\n\x00"):
            raise SecretError(f"secret {secret_name!r} holds a line break or NUL inside its value")
        return SecretValue(text)
