"""What `kavach login` checks before it calls the server, and who a saved session is for."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kavach.cli import render
from kavach.cli.config import check_home
from kavach.cli.credentials import TOKEN_ENV, clean_token
from kavach.cli.errors import ApiError, NotLoggedIn

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.credentials import Credentials


def before_login(cli: App, server: str) -> Credentials | None:
    """Refuse, naming the way out, what would make a login fail once approved.

    Checked before any request: the state directory, KAVACH_TOKEN and the credential store.
    Returns the credentials already saved for `server`, if any.
    """
    check_home(cli.home)
    token = os.environ.get(TOKEN_ENV, "")
    if token.strip():
        # Never repeated in the message: a malformed token may still be most of a real one.
        clean_token(token, TOKEN_ENV, f"unset {TOKEN_ENV} or set it to the token alone")
        render.warn(cli, f"{TOKEN_ENV} is set: other commands use it, not this login, until unset")
    return cli.store.check(server)


def signed_in_user(cli: App, server: str) -> dict[str, Any] | None:
    """Return who the saved session on `server` is for, or None if it no longer works."""
    try:
        with cli.make_client(cli.session(server, env_token=False)) as client:
            me = client.get("/auth/me")  # refreshes an expired access token first
    except NotLoggedIn:
        return None  # the refresh token was refused: the session has ended
    except ApiError as exc:
        if exc.status in (401, 403):
            return None  # revoked, or a token the server no longer accepts
        raise
    return me if isinstance(me, dict) else {}
