"""`kavach server …`: run, migrate and administer the server on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Run and administer a Kavach server on this machine.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def start(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
) -> None:
    """Start the API server (SQLite under ~/.kavach/server unless KAVACH_DATABASE_URL is set)."""
    from kavach.server.errors import ConfigurationError
    from kavach.server.runner import serve

    try:
        serve(host=host, port=port, workers=workers)
    except ConfigurationError as error:
        raise _fail(error.message) from None


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest (safe while other instances run)."""
    from kavach.server.admin import run_migrations
    from kavach.server.errors import ConfigurationError

    try:
        database, state = run_migrations()
    except ConfigurationError as error:
        raise _fail(error.message) from None
    typer.echo(f"{database} is at revision {', '.join(state.current) or 'none'} (head)")


def _decide(user_code: str, *, approve: bool, login: str | None) -> None:
    from kavach.server.admin import decide_login
    from kavach.server.errors import KavachError

    try:
        shown = decide_login(user_code, approve=approve, login=login)
    except KavachError as error:
        raise _fail(error.message) from None
    verb = f"approved as {login}" if approve else "denied"
    typer.echo(f"Login {shown} {verb}.")


@app.command()
def approve(
    user_code: Annotated[str, typer.Argument(help="The code `kavach login` printed.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Local user name to sign in as.")],
) -> None:
    """Approve a pending login (local identity provider) as the given user."""
    _decide(user_code, approve=True, login=user)


@app.command()
def deny(
    user_code: Annotated[str, typer.Argument(help="The code `kavach login` printed.")],
) -> None:
    """Deny a pending login."""
    _decide(user_code, approve=False, login=None)


@app.command("rotate-key")
def rotate_key() -> None:
    """Activate a new secret-encryption key and re-wrap every data key (values stay as they are)."""
    from kavach.server.admin import rotate_secret_key
    from kavach.server.errors import KavachError

    try:
        key_id, count = rotate_secret_key()
    except KavachError as error:
        raise _fail(error.message) from None
    typer.echo(f"Active secret-encryption key is {key_id}; re-wrapped {count} data key(s).")
    typer.echo("Run `kavach server retire-keys` to drop old keys no data key uses any more.")


@app.command("retire-keys")
def retire_keys() -> None:
    """Remove old secret-encryption keys that no data key is wrapped with any more."""
    from kavach.server.admin import retire_secret_keys
    from kavach.server.errors import KavachError

    try:
        dropped, busy, configured = retire_secret_keys()
    except KavachError as error:
        raise _fail(error.message) from None
    if configured:
        typer.echo(
            "Unused, safe to remove from KAVACH_SECRET_ENCRYPTION_OLD_KEYS: "
            f"{', '.join(dropped) or 'none'}."
        )
    else:
        typer.echo(f"Retired: {', '.join(dropped) or 'none'}.")
    if busy:
        typer.echo(f"Still in use (run rotate-key first): {', '.join(busy)}.")
