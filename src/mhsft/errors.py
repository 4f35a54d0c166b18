"""The one exception type the CLI turns into a message and an exit code."""

from __future__ import annotations

USAGE = 2
PREFLIGHT = 3
DATA_CHECK = 4
REHEARSAL_FAILED = 5
INTERRUPTED = 130


class MhsftError(Exception):
    """A user-facing failure: `message` is one paragraph saying what is wrong and how to fix it."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
