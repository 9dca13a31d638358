"""`kavach server …`: run, migrate and administer the server on this machine."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kavach.cli.errors import ExitCode
from kavach.cli.options import command_group
from kavach.cli.server_extra import require_server

if TYPE_CHECKING:
    from kavach.server.backup.archive import Manifest

app = command_group(
    help="Run and administer a Kavach server on this machine (needs the server extra).",
    no_args_is_help=True,
)
LOG_FORMAT_ENV = "KAVACH_LOG_FORMAT"


@app.callback()
def needs_server(ctx: typer.Context) -> None:
    """Stop every `kavach server` command with the install hint when the server is missing."""
    require_server(f"kavach server {ctx.invoked_subcommand}")


class LogFormatChoice(StrEnum):
    """The values of --log-format (the server's LogFormat, without importing the server)."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


def _fail(message: str, code: ExitCode = ExitCode.LOCAL) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def start(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option(
            "--log-format",
            case_sensitive=False,
            help="Logs on stderr: JSON lines, console text, or auto (console on a terminal, "
            f"else JSON). Default: ${LOG_FORMAT_ENV}, else auto.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the API server (SQLite under ~/.kavach/server unless KAVACH_DATABASE_URL is set).

    Prints one line saying where it listens once it does; a port in use stops it at once.
    """
    from kavach.server.errors import ConfigurationError
    from kavach.server.runner import serve

    if log_format is not None:
        # Through the environment, so that every worker process reads the same setting.
        os.environ[LOG_FORMAT_ENV] = log_format.value
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


def _link(login: str, provider: str, subject: str, *, remove: bool) -> None:
    from kavach.server.admin import link_identity
    from kavach.server.errors import KavachError

    try:
        link_identity(login, provider=provider, subject=subject, remove=remove)
    except KavachError as error:
        raise _fail(error.message) from None
    verb = "no longer signs in" if remove else "now signs in"
    typer.echo(f"{provider} subject {subject} {verb} as {login}.")


ProviderName = Annotated[
    str, typer.Option("--provider", "-p", help="The OpenID provider's name (in its settings).")
]
Subject = Annotated[
    str, typer.Option("--subject", "-s", help="The person's subject (`sub`) at that provider.")
]


@app.command("link-identity")
def link_identity(
    user: Annotated[str, typer.Argument(help="The existing user's login.")],
    provider: ProviderName,
    subject: Subject,
) -> None:
    """Let a person sign in with another provider as an existing user (never automatic)."""
    _link(user, provider, subject, remove=False)


@app.command("unlink-identity")
def unlink_identity(
    user: Annotated[str, typer.Argument(help="The user's login.")],
    provider: ProviderName,
    subject: Subject,
) -> None:
    """Undo link-identity: that provider's subject no longer signs in as the user."""
    _link(user, provider, subject, remove=True)


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


def _summary(manifest: Manifest) -> str:
    rows = sum(table.rows for table in manifest.tables)
    return (
        f"schema revision {manifest.schema_revision}, {rows} rows in {len(manifest.tables)} tables"
    )


def _key_ids(manifest: Manifest) -> str:
    keys = manifest.keys
    named = [
        ("secret-encryption", keys.secret_encryption),
        ("provider-credential", keys.provider_credential),
        ("audit", keys.audit),
    ]
    return "; ".join(f"{kind} {', '.join(ids)}" for kind, ids in named if ids) or "none"


def _warn_unavailable(manifest: Manifest) -> None:
    absent = manifest.keys_unavailable
    for kind, ids in (("secret-encryption", absent.secret_encryption), ("audit", absent.audit)):
        if ids:
            typer.echo(
                f"Warning: data refers to {kind} key ids this server lacks: {', '.join(ids)}",
                err=True,
            )
    if manifest.unreadable_provider_credentials:
        typer.echo(
            f"Warning: {manifest.unreadable_provider_credentials} provider credential set(s) "
            "do not decrypt with this server's provider-credential key",
            err=True,
        )


def _run_backup_command(action: str, work: object) -> tuple[str, Manifest]:
    from kavach.server.backup.errors import DatabaseFailed
    from kavach.server.errors import KavachError

    assert callable(work)  # noqa: S101 - a local call below
    try:
        result: tuple[str, Manifest] = work()
    except DatabaseFailed as error:
        raise _fail(f"{action} failed: {error.message}", code=ExitCode.SERVER) from None
    except KavachError as error:
        raise _fail(f"{action} refused: {error.message}") from None
    except OSError as error:
        raise _fail(f"{action} failed: {error.strerror or type(error).__name__}") from None
    return result


@app.command()
def backup(
    to: Annotated[Path, typer.Option("--to", help="Backup file to create (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
) -> None:
    """Write a consistent, compressed backup of the server's database (keys not included)."""
    from kavach.server.admin import backup_database

    database, manifest = _run_backup_command("backup", lambda: backup_database(to, force=force))
    typer.echo(f"Backed up {database} to {to} ({_summary(manifest)}).")
    typer.echo(f"Restoring it needs the keys with ids: {_key_ids(manifest)}. Keep them apart.")
    _warn_unavailable(manifest)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="Backup file written by `kavach server backup`.")],
) -> None:
    """Restore a backup into the server's empty database, then migrate it to the latest."""
    from kavach.server.admin import restore_database

    database, manifest = _run_backup_command("restore", lambda: restore_database(file))
    taken = manifest.created_at.isoformat(timespec="seconds")
    typer.echo(f"Restored {file} (taken {taken}, {_summary(manifest)}) into {database}.")
