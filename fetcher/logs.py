"""Log lines: one per event, ``key=value`` fields, never a secret.

Every line passes through the URL redaction (credentials and query strings) in its formatter.
With ``--log-format json`` each line is one JSON object with the same keys as the text line, plus
``time`` and ``level``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from fetcher.lease.uri import redact_url

LOGGER_NAME = "model-fetcher"
LOG_FORMATS = ("text", "json")

# A field starts at the beginning of the message or after a space: ``key=``.
_KEY = re.compile(r"(?:^| )([a-z_][a-z0-9_-]*)=")
# Free text (an error message, a detail) runs to the end of the line, whatever it contains.
FREE_TEXT_KEYS = frozenset({"error", "detail", "reason"})
# Names stay text even when they look like numbers (a model may be called "42").
NAME_KEYS = frozenset({"model", "config_name", "secret", "location", "path"})
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_fields(message: str) -> dict[str, Any]:
    """The ``key=value`` fields of a log message; a value runs to the next `` key=``.

    Whole numbers and decimals become numbers, ``-`` becomes null; text before the first key,
    if any, is kept as ``msg``.
    """
    fields: dict[str, Any] = {}
    matches = list(_KEY.finditer(message))
    if not matches:
        return {"msg": message} if message else {}
    if matches[0].start() > 0:
        fields["msg"] = message[: matches[0].start()]
    for index, match in enumerate(matches):
        key = match.group(1)
        end = len(message) if index + 1 == len(matches) else matches[index + 1].start()
        if key in FREE_TEXT_KEYS:
            end = len(message)
        value = message[match.end():end]
        fields[key] = value if key in NAME_KEYS else _typed(value)
        if key in FREE_TEXT_KEYS:
            break
    return fields


def _typed(value: str) -> Any:
    if value == "-":
        return None
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        record.message = redact_url(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = redact_url(record.getMessage())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = {"time": stamp, "level": record.levelname, **parse_fields(message)}
        return json.dumps(line, ensure_ascii=False)


def configure(level: str = "INFO", log_format: str = "text") -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    # urllib3 warns of each retry with the request's URL, whose query may be a presigned signature or a
    # token; the fetcher reports retries that matter itself.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def human_rate(byte_count: int, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    return f"{byte_count / seconds / 1024**2:.1f}MiB/s"
