"""The termination message file, which ``kubectl describe pod`` shows for a failed container."""

from __future__ import annotations

from pathlib import Path

# Kubernetes keeps at most 4096 bytes of the message.
MAX_BYTES = 4096


def write_termination_message(path: Path | None, lines: list[str]) -> None:
    if path is None or not lines:
        return
    text = "\n".join(lines)
    data = text.encode("utf-8")
    if len(data) > MAX_BYTES:
        data = data[: MAX_BYTES - 4].decode("utf-8", "ignore").encode("utf-8") + b"\n..."
    try:
        with open(path, "wb") as out:
            out.write(data)
    except OSError:
        pass  # outside a pod the file may not be writable; the log already has every line
