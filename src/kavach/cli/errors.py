"""Errors the CLI shows as one line, each carrying the exit code it maps to (DESIGN §5)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes shared by every command."""

    OK = 0
    LOCAL = 1  # a local error: a file, the config, input refused before sending; differences
    USAGE = 2  # the command line itself: an unknown option, a missing argument (as Click)
    AUTH = 3  # not logged in, or permission denied
    SERVER = 4  # the server answered with an error, or could not be reached
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class CliError(Exception):
    """A failure to report as `Error: <message> (<code>)`; local by default."""

    exit_code: ExitCode = ExitCode.LOCAL
    kind = "local_error"  # the error_code a JSON report gives when the server gave none

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


class MissingContext(CliError):
    """A command needs an organization, secret group or environment nobody named."""

    kind = "missing_context"


class NotFound(CliError):
    """A named resource does not exist or the caller may not see it."""

    # The server answers 404 for the same case, which is a server error (exit 4) too.
    exit_code = ExitCode.SERVER

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_found")


class NotLoggedIn(CliError):
    """No usable credentials for the server, or the session has ended."""

    exit_code = ExitCode.AUTH
    kind = "not_logged_in"


class NetworkError(CliError):
    """The server could not be reached or did not answer in time."""

    exit_code = ExitCode.SERVER
    kind = "unreachable"


class ApiError(CliError):
    """The server answered with an error envelope (or something that is not one)."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        data: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=error_code)
        self.status = status
        self.error_code = error_code
        self.data = data
        self.retry_after = retry_after
        # 401/403 mean "not logged in / denied"; any other answer is a server error.
        self.exit_code = ExitCode.AUTH if status in (401, 403) else ExitCode.SERVER
