"""The few calls of Triton's HTTP model repository API that the sidecar needs (explicit model control)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from fetcher.credentials.secrets import MAX_SECRET_BYTES, SecretValue
from fetcher.errors import FetcherError, SecretError, os_reason

# An HTTP header name (RFC 9110 token).
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class TritonError(FetcherError):
    """Triton could not be reached, or refused a load or an unload."""

    failure_reason = "triton"  # the label of model_fetcher_failures_total


@dataclass(frozen=True)
class TritonAuth:
    """The header Triton demands on its model repository API (``--http-restricted-api``)."""

    header: str
    value: SecretValue

    @classmethod
    def read(cls, header: str, path: Path) -> "TritonAuth":
        """The value from a mounted Secret's file, exactly as Triton compares it (never logged)."""
        where = f"Triton model-control key file {str(path)!r}"
        try:
            data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
        except OSError as exc:
            raise SecretError(f"{where}: cannot read it: {exc.strerror}",
                              hint="mount the model-control Secret there, or fix --triton-auth-file") from None
        if len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"{where} is larger than {MAX_SECRET_BYTES} bytes")
        if not data:
            raise SecretError(f"{where} is empty")
        if not all(0x21 <= byte <= 0x7E for byte in data):
            # Triton gets the value through an environment variable, unchanged: a trailing newline
            # (kubectl create secret --from-file keeps it) would make every request mismatch.
            raise SecretError(f"{where} holds white space, a line break or a character outside printable ASCII",
                              hint="create the Secret with --from-literal, or from a file without a trailing newline")
        return cls(header=header, value=SecretValue(data.decode("ascii")))


class TritonClient:
    def __init__(self, url: str, *, connect_timeout: float = 5.0, load_timeout: float = 600.0,
                 auth: TritonAuth | None = None) -> None:
        self.url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.load_timeout = load_timeout
        self.auth = auth
        self._session = requests.Session()
        self._session.trust_env = False  # Triton is in the same pod: never through a proxy

    def _post(self, path: str, what: str) -> None:
        # Only the repository API calls carry the key: health and readiness stay open for the probes.
        headers = {self.auth.header: self.auth.value.reveal()} if self.auth else {}
        try:
            response = self._session.post(self.url + path, json={}, headers=headers,
                                          timeout=(self.connect_timeout, self.load_timeout))
        except requests.Timeout:
            raise TritonError(f"{what}: Triton at {self.url} did not answer within {self.load_timeout:.0f}s") from None
        except requests.RequestException as exc:
            raise TritonError(f"{what}: cannot reach Triton at {self.url} ({os_reason(exc) or type(exc).__name__})") from None
        if response.status_code == 403:
            sent = f"the header {self.auth.header!r} was sent" if self.auth else "no key was sent"
            raise TritonError(f"{what}: Triton refused its model repository API ({sent}): {_error_text(response)}",
                              hint="give the sidecar --triton-auth-header/--triton-auth-file with the header and "
                                   "value of Triton's --http-restricted-api; restart the pod after rotating the Secret")
        if response.status_code != 200:
            raise TritonError(f"{what}: Triton answered HTTP {response.status_code}: {_error_text(response)}")

    def load(self, name: str) -> None:
        """Load (or reload) a model; returns once Triton has it ready, raises when the load fails."""
        self._post(f"/v2/repository/models/{quote(name, safe='')}/load", f"load of model {name!r}")

    def unload(self, name: str) -> None:
        self._post(f"/v2/repository/models/{quote(name, safe='')}/unload", f"unload of model {name!r}")

    def live(self) -> bool:
        try:
            response = self._session.get(self.url + "/v2/health/live", timeout=(self.connect_timeout, self.connect_timeout))
        except requests.RequestException:
            return False
        return response.status_code == 200

    def model_ready(self, name: str) -> bool:
        try:
            response = self._session.get(self.url + f"/v2/models/{quote(name, safe='')}/ready",
                                         timeout=(self.connect_timeout, self.connect_timeout))
        except requests.RequestException as exc:
            raise TritonError(f"model {name!r}: cannot reach Triton at {self.url} ({os_reason(exc) or type(exc).__name__})") from None
        return response.status_code == 200

    def wait_unloaded(self, name: str, timeout: float) -> None:
        """Triton unloads once in-flight requests finish: wait until the model no longer answers ready."""
        deadline = time.monotonic() + timeout
        while self.model_ready(name):
            if time.monotonic() >= deadline:
                raise TritonError(f"unload of model {name!r}: still ready after {timeout:.0f}s")
            time.sleep(0.2)


def _error_text(response: requests.Response) -> str:
    try:
        message = response.json().get("error")
    except ValueError:
        message = None
    text = str(message or response.text or "no detail").strip()
    return text if len(text) <= 500 else text[:497] + "..."
