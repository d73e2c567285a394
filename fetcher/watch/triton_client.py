"""The few calls of Triton's HTTP model repository API that the sidecar needs (explicit model control)."""

from __future__ import annotations

import time
from urllib.parse import quote

import requests

from fetcher.errors import FetcherError, os_reason


class TritonError(FetcherError):
    """Triton could not be reached, or refused a load or an unload."""

    failure_reason = "triton"  # the label of model_fetcher_failures_total


class TritonClient:
    def __init__(self, url: str, *, connect_timeout: float = 5.0, load_timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.load_timeout = load_timeout
        self._session = requests.Session()
        self._session.trust_env = False  # Triton is in the same pod: never through a proxy

    def _post(self, path: str, what: str) -> None:
        try:
            response = self._session.post(self.url + path, json={},
                                          timeout=(self.connect_timeout, self.load_timeout))
        except requests.Timeout:
            raise TritonError(f"{what}: Triton at {self.url} did not answer within {self.load_timeout:.0f}s") from None
        except requests.RequestException as exc:
            raise TritonError(f"{what}: cannot reach Triton at {self.url} ({os_reason(exc) or type(exc).__name__})") from None
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
