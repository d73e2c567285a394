"""Log lines: one per event, ``key=value`` fields, never a secret."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "model-fetcher"


def configure(level: str = "INFO") -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
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
