"""`kavach login`, `logout` and `status`: the session with a server."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from kavach.cli import actions, render
from kavach.cli.app import App, get_app
from kavach.cli.config import ActiveContext
from kavach.cli.errors import CliError, NotLoggedIn
from kavach.cli.options import JsonFlag, command_group

app = command_group()
PANEL = "Session"

ServerOption = Annotated[
    str | None, typer.Option("--server", help="Server URL to log in to (saved as the default).")
]
NoBrowserFlag = Annotated[
    bool, typer.Option("--no-browser", help="Print the URL instead of opening a browser.")
]
ApproveOption = Annotated[
    str | None,
    typer.Option(
        "--approve",
        metavar="CODE",
        help="Approve a pending login for yourself: the code another `kavach login` shows.",
    ),
]
DenyOption = Annotated[
    str | None,
    typer.Option("--deny", metavar="CODE", help="Deny a pending login (one you did not start)."),
]
ForceFlag = Annotated[
    bool,
    typer.Option("--force", help="Start a new login even when already signed in to the server."),
]


def _has_display() -> bool:
    """Tell whether a graphical browser could open (Linux and BSD need X11 or Wayland)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser(cli: App, url: str) -> None:
    opener = cli.runtime.open_browser
    if opener is None:
        import webbrowser

        opener = webbrowser.open
    try:
        opener(url)
    except Exception as exc:  # a browser that fails to start must not fail the login
        cli.log(f"could not open a browser: {exc}")


def _decide(cli: App, user_code: str, *, approve: bool) -> None:
    """Approve (for the signed-in user) or deny a pending login on the configured server."""
    verb = "approve" if approve else "deny"
    answer = cli.client.post(f"/auth/device/{verb}", {"user_code": user_code})
    data: dict[str, Any] = answer if isinstance(answer, dict) else {}
    shown = data.get("user_code", user_code)
    who = (data.get("user") or {}).get("login")
    message = f"Login {shown} approved as {who}." if approve else f"Login {shown} denied."
    render.output(cli, data, lambda: cli.out.print(message, markup=False))


def _show_local_instructions(cli: App, user_code: str) -> None:
    render.note(cli, "Approve it from a terminal where you are signed in to this server:")
    render.note(cli, f"  kavach login --approve {user_code}")
    render.note(cli, "or on the server's machine:")
    render.note(cli, f"  kavach server approve {user_code} --user NAME")
    render.note(cli, "The same, in a browser:")


@app.command(rich_help_panel=PANEL)
def login(
    ctx: typer.Context,
    server: ServerOption = None,
    no_browser: NoBrowserFlag = False,
    force: ForceFlag = False,
    approve: ApproveOption = None,
    deny: DenyOption = None,
    json: JsonFlag = False,
) -> None:
    """Log in to a Kavach server (device flow), or approve or deny another login for yourself.

    The server is --server, else $KAVACH_SERVER, else the one saved by the last login.
    Already signed in there, it says as whom and starts no new login unless --force.
    """
    from kavach.cli import device, preflight
    from kavach.cli.credentials import Credentials, new_fallback_seed

    cli = get_app(ctx, json=json)
    if approve is not None or deny is not None:
        if approve is not None and deny is not None:
            raise CliError("use --approve or --deny, not both")
        _decide(cli, approve or deny or "", approve=approve is not None)
        return
    url = cli.server_url(server)
    saved = preflight.before_login(cli, url)
    if saved is not None and not force:
        user = preflight.signed_in_user(cli, url)
        if user is not None:
            _already_logged_in(cli, url, user)
            return
        render.note(cli, f"Your session on {url} has ended; starting a new login.")
    with cli.make_client(cli.session(url, env_token=False)) as client:
        code = device.start(client)
        render.note(cli, f"Your one-time code: {code.user_code}")
        if code.identity_provider == "local":
            # The page only repeats these instructions: no browser for it.
            _show_local_instructions(cli, code.user_code)
            render.note(cli, code.url)
        else:
            verb = "Sign in to approve" if code.identity_provider == "oidc" else "Approve"
            render.note(cli, f"{verb} the login at:")
            render.note(cli, code.url)
            if not no_browser and _has_display():
                _open_browser(cli, code.url)
        render.note(cli, "Waiting for approval (Ctrl-C to cancel)...")
        answer = device.wait_for_token(
            client, code, sleep=cli.runtime.sleep, clock=cli.runtime.clock
        )
    credentials = Credentials.from_token_response(answer, fallback_seed=new_fallback_seed())
    cli.store.save(url, credentials)
    _make_default(cli, url)
    who = credentials.login or "unknown user"
    render.output(
        cli,
        {"server": url, "user": credentials.user, "already_logged_in": False},
        lambda: cli.out.print(f"Logged in as {who} on {url}", markup=False),
    )


def _make_default(cli: App, url: str) -> None:
    """Make `url` the server later commands use."""
    if cli.config.server != url:
        # Names in the active context belong to the previous server.
        cli.config.context = ActiveContext()
        cli.config.server = url
        cli.save_config()


def _already_logged_in(cli: App, url: str, user: dict[str, Any]) -> None:
    _make_default(cli, url)
    who = user.get("login") or "unknown user"

    def human() -> None:
        cli.out.print(f"Already logged in as {who} on {url}.", markup=False)
        render.note(cli, "To log in again, run `kavach login --force`.")

    render.output(cli, {"server": url, "user": user, "already_logged_in": True}, human)


@app.command(rich_help_panel=PANEL)
def logout(ctx: typer.Context, json: JsonFlag = False) -> None:
    """End the session on the server and forget the local credentials."""
    cli = get_app(ctx, json=json)
    url = cli.configured_server()
    session = cli.session(url, env_token=False) if url else None
    if url is None or session is None or session.credentials() is None:
        line = f"Not logged in to {url}." if url else "Not logged in."
        actions.say(cli, {"server": url, "logged_out": False}, line)
        return
    try:
        with cli.make_client(session) as client:
            client.post("/auth/logout")
    except CliError as exc:
        # The local credentials go regardless: logging out must always work offline.
        render.warn(cli, f"the server did not end the session: {exc}")
    cli.store.delete(url)
    actions.say(cli, {"server": url, "logged_out": True}, f"Logged out of {url}.")


def _expiry(expires_at: datetime, now: datetime) -> str:
    """Describe an expiry time relative to now, e.g. "in 14m" or "expired 2h ago"."""
    seconds = int((expires_at - now).total_seconds())
    span = abs(seconds)
    amount = f"{span // 3600}h" if span >= 3600 else f"{span // 60}m" if span >= 60 else f"{span}s"
    when = expires_at.isoformat(timespec="seconds")
    return f"{when} (in {amount})" if seconds > 0 else f"{when} (expired {amount} ago)"


@app.command(rich_help_panel=PANEL)
def status(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Show the server, who you are logged in as, and the active context."""
    cli = get_app(ctx, json=json)
    url = cli.configured_server()
    if url is None:
        raise NotLoggedIn("not logged in: no server set; run `kavach login --server URL`")
    client = cli.client
    session = client.session
    if session is None or session.access_token() is None:
        raise NotLoggedIn(f"not logged in to {url}; run `kavach login`")
    me = client.get("/auth/me")
    user: dict[str, Any] = me if isinstance(me, dict) else {}
    stored = None if session.env_token else session.credentials()  # refreshed by get() if needed
    now = datetime.now(UTC)
    token = {
        "source": "environment" if session.env_token else "stored",
        "expires_at": stored.expires_at.isoformat(timespec="seconds") if stored else None,
        "expired": stored.is_expired(now) if stored else None,
    }
    chosen = cli.chosen
    active = chosen.context
    context = {
        "organization": active.organization,
        "secret_group": active.secret_group,
        "environment": active.environment,
    }
    data = {
        "server": url,
        "user": user,
        "token": token,
        "context": context,
        "context_sources": chosen.sources,
    }

    def level(name: str | None, key: str) -> str | None:
        source = chosen.sources.get(key)
        return f"{name} (from {source})" if name and source else name

    def human() -> None:
        name = f"{user.get('login')} ({user['name']})" if user.get("name") else user.get("login")
        expiry = _expiry(stored.expires_at, now) if stored else "set by KAVACH_TOKEN"
        render.fields(
            cli,
            [
                ("Server", url),
                ("User", name),
                ("Email", user.get("email")),
                ("Provider", user.get("provider")),
                ("Access token expires", expiry),
                ("Organization", level(active.organization, "organization")),
                ("Secret group", level(active.secret_group, "secret_group")),
                ("Environment", level(active.environment, "environment")),
            ],
        )

    render.output(cli, data, human)
