"""The termination message file, which ``kubectl describe pod`` shows for a failed container.

Kubernetes keeps at most 4096 bytes of it per container. With many failures the message shows the
most useful ones first: one failure of each kind of reason (the kinds a user can fix from the
message alone first), then the others in the lease's order, as many as fit, then a count of the
rest. The log keeps every line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fetcher.progress import REASON_ORDER

# Kubernetes keeps at most 4096 bytes of the message (UTF-8 bytes).
MAX_BYTES = 4096
# One very long reason may not crowd out the others.
MAX_LINE_BYTES = 1024


def order_failures(failures: Sequence[tuple[str, str | None]]) -> list[str]:
    """Lines ordered for the message: ``failures`` are (line, reason kind) in the lease's order."""
    rank = {reason: index for index, reason in enumerate(REASON_ORDER)}
    first_of_kind: dict[str | None, int] = {}
    for index, (_line, reason) in enumerate(failures):
        first_of_kind.setdefault(reason, index)
    leading = sorted(first_of_kind.values(), key=lambda i: (rank.get(failures[i][1] or "", len(rank)), i))
    rest = [i for i in range(len(failures)) if i not in set(leading)]
    return [failures[i][0] for i in leading + rest]


def fit_message(lines: Sequence[str], limit: int = MAX_BYTES) -> bytes:
    """As many whole lines as fit in ``limit`` bytes, then "... and N more" for the others."""
    kept: list[bytes] = []
    used = 0
    for index, line in enumerate(lines):
        data = _shorten(line.encode("utf-8"), MAX_LINE_BYTES)
        left = len(lines) - index - 1
        # Room for this line, and (if lines remain) for the note that counts them.
        note_room = len(_more_note(len(lines))) + 1 if left else 0
        needed = len(data) + (1 if kept else 0)
        if used + needed + note_room > limit:
            kept.append(_more_note(len(lines) - index))
            break
        kept.append(data)
        used += needed
    message = b"\n".join(kept)
    return _shorten(message, limit)


def _more_note(count: int) -> bytes:
    return f"... and {count} more failed (the container's log has every reason)".encode("utf-8")


def _shorten(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[: limit - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


def write_termination_message(path: Path | None, lines: Sequence[str]) -> None:
    if path is None or not lines:
        return
    try:
        with open(path, "wb") as out:
            out.write(fit_message(lines))
    except OSError:
        pass  # outside a pod the file may not be writable; the log already has every line
