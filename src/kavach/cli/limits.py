"""The server's limits on a commit, checked before a change is shown or anything is sent.

The server refuses a version over its limits anyway; checking first means the user is not
asked to confirm a change, or made to wait for a large upload, that cannot go in. The
limits come from `GET /api/v1/info`; a server that does not report them is assumed to keep
the defaults (`kavach.formats.limits`). Messages name secrets and sizes, never values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavach.cli.errors import CliError
from kavach.formats.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SECRETS,
    DEFAULT_MAX_VALUE_BYTES,
    MAX_MESSAGE_CHARS,
)

if TYPE_CHECKING:
    from kavach.cli.client import ApiClient


@dataclass(frozen=True)
class Limits:
    """How much one commit may hold."""

    value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    secrets: int = DEFAULT_MAX_SECRETS
    message_chars: int = MAX_MESSAGE_CHARS
    body_bytes: int = DEFAULT_MAX_BODY_BYTES


class OverLimit(CliError):
    """A change the server would refuse for its size; nothing was shown or sent."""


def _positive(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def server_limits(client: ApiClient) -> Limits:
    """Return the limits the server reports; the defaults for any it does not."""
    answer = client.get("/info", auth=False)
    reported = answer.get("limits") if isinstance(answer, dict) else None
    data: Mapping[str, Any] = reported if isinstance(reported, dict) else {}
    default = Limits()
    return Limits(
        value_bytes=_positive(data, "max_secret_value_bytes", default.value_bytes),
        secrets=_positive(data, "max_secrets_per_version", default.secrets),
        message_chars=_positive(data, "max_message_chars", default.message_chars),
        body_bytes=_positive(data, "max_body_bytes", default.body_bytes),
    )


def body_size(body: object) -> int:
    """Return the size of `body` as the client sends it (compact UTF-8 JSON)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return len(text.encode("utf-8"))


def problems(
    limits: Limits,
    secrets: Mapping[str, str] | None = None,
    message: str | None = None,
    *,
    body: object = None,
) -> list[str]:
    """Return what is over `limits`, one sentence each (names and sizes, never values)."""
    found = []
    if message is not None:
        if not message:
            found.append("the message is empty")
        elif len(message) > limits.message_chars:
            found.append(
                f"the message is {len(message):,} characters, over the limit of "
                f"{limits.message_chars:,}"
            )
        if "\0" in message:
            found.append("the message holds a NUL character")
    if secrets is not None:
        sizes = {name: len(value.encode("utf-8")) for name, value in secrets.items()}
        large = sorted(name for name, size in sizes.items() if size > limits.value_bytes)
        if large:
            listed = ", ".join(f"{name} ({sizes[name]:,} bytes)" for name in large)
            found.append(
                f"{'values' if len(large) > 1 else 'the value'} of {listed} "
                f"{'are' if len(large) > 1 else 'is'} over the server's limit of "
                f"{limits.value_bytes:,} bytes a value"
            )
        if len(secrets) > limits.secrets:
            found.append(
                f"the version would hold {len(secrets):,} secrets, over the server's limit of "
                f"{limits.secrets:,}"
            )
    if body is not None and not found:
        size = body_size(body)
        if size > limits.body_bytes:
            found.append(
                f"the request would be {size:,} bytes, over the server's limit of "
                f"{limits.body_bytes:,}; commit the change in smaller parts"
            )
    return found


def check(
    client: ApiClient,
    secrets: Mapping[str, str] | None = None,
    message: str | None = None,
    *,
    body: object = None,
) -> None:
    """Refuse, before anything is shown or sent, what the server's limits would refuse.

    `secrets` is the whole version the change would make (or the values about to be
    staged), `message` its commit message, `body` the request about to be sent.
    """
    found = problems(server_limits(client), secrets, message, body=body)
    if found:
        raise OverLimit("; ".join(found))
