"""Exit statuses, named in one place."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    MODELS_FAILED = 1  # at least one model could not be installed
    USAGE = 2  # the command line is wrong
    BAD_INPUT = 3  # values, model specs or repositories are wrong: nothing was fetched
