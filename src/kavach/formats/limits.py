"""What a version and its message may hold: the server's defaults, shared with the CLI.

The value size, the number of secrets and the request size are server settings, reported
by `GET /api/v1/info`; these are their defaults, which a client assumes of a server that
does not report them. The message length is fixed.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 500
DEFAULT_MAX_VALUE_BYTES = 64 * 1024
DEFAULT_MAX_SECRETS = 5000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
