"""Exit codes, named in one place beside the errors they are mapped from."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    MODELS_FAILED = 1  # at least one model could not be installed (or, for status: not ready)
    USAGE = 2  # the command line is wrong
    BAD_INPUT = 3  # values, model specs or repositories are wrong: nothing was fetched
