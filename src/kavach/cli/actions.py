"""What `org`, `group` and `env` commands share: confirm, show, activate, delete."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from kavach.cli import render
from kavach.cli.context import activated, forgotten
from kavach.cli.errors import ApiError, CliError, ExitCode
from kavach.cli.resources import Object, Resource
from kavach.cli.safe_text import neutralize

if TYPE_CHECKING:
    from kavach.cli.app import App

RESOURCE_COLUMNS = [
    ("name", "Name"),
    ("role", "Your role"),
    ("description", "Description"),
    ("created_at", "Created"),
]


def confirm(cli: App, action: str, *, yes: bool) -> None:
    """Ask before `action` (e.g. "delete organization acme") unless --yes; never guess."""
    if yes:
        return
    if not cli.interactive():
        raise CliError(f"not confirmed: pass --yes to {action} (stdin is not a terminal)")
    # Asked on stderr and read from stdin: stdout is kept for the command's data.
    question = neutralize(f"{action[0].upper()}{action[1:]}? [y/N]: ")
    typer.echo(question, nl=False, err=True)
    line = sys.stdin.readline()
    if not line.endswith("\n"):
        typer.echo("", err=True)  # end of input: finish the prompt's line
    if line.strip().lower() not in ("y", "yes"):
        render.note(cli, "Cancelled; nothing was changed.")
        raise typer.Exit(ExitCode.LOCAL)


def say(cli: App, data: Any, line: str) -> None:
    """Print `data` as JSON with --json, else the one `line`."""
    render.output(cli, data, lambda: cli.out.print(line, markup=False, soft_wrap=True))


def human_rows(rows: list[Object], *keys: str) -> list[Object]:
    """Return copies of `rows` with the timestamp `keys` parsed for display."""
    return [{**row, **{key: render.when(row.get(key)) for key in keys}} for row in rows]


def show_list(
    cli: App, rows: list[Object], active: str | None, *, title: str | None, empty: str
) -> None:
    """Print organizations, groups or environments, marking the active one."""
    marked = [{**row, "active": active is not None and row.get("name") == active} for row in rows]
    render.output(
        cli,
        render.listing(marked),
        lambda: render.table(
            cli,
            human_rows(marked, "created_at"),
            RESOURCE_COLUMNS,
            title=title,
            empty=empty,
            mark="active",
        ),
    )


def activate(cli: App, target: Resource) -> None:
    """Make `target` (and its parents) the active context in config.yaml."""
    cli.config.context = activated(cli.config.context, *target.names)
    cli.save_config()
    active = cli.config.context
    data = {
        "organization": active.organization,
        "secret_group": active.secret_group,
        "environment": active.environment,
    }
    path = "/".join(name for name in data.values() if name)
    kept = "" if path == target.qualified else f" (active: {path})"
    say(cli, data, f"Switched to {target.label}{kept}.")
    from kavach.cli.project import CONFIG_SOURCE

    overriding = sorted({s for s in cli.chosen.sources.values() if s != CONFIG_SOURCE})
    if overriding:
        render.warn(cli, f"here, {' and '.join(overriding)} choose(s) the context before it.")


def delete(cli: App, target: Resource, *, cascade: bool, yes: bool, force: bool = False) -> None:
    """Delete `target` after confirmation, and drop it from the active context."""
    action = f"delete {target.label}" + (" and everything in it" if cascade else "")
    confirm(cli, action, yes=yes)
    params = {"cascade": "true"} if cascade else {}
    if force:
        params["force"] = "true"
    try:
        data = cli.client.delete(target.path, params=params or None)
    except ApiError as exc:
        if exc.error_code == "has_children":
            # Keep what the server says is inside; replace its advice with the CLI's flag.
            found = exc.message.split(";")[0]
            hint = f"{found}; pass --cascade to delete it with everything in it"
            raise ApiError(exc.status, exc.error_code, hint, exc.data) from exc
        if exc.error_code == "environment_referenced":
            hint = exc.message.replace("pass force=true", "pass --force")
            raise ApiError(exc.status, exc.error_code, hint, exc.data) from exc
        raise
    before = cli.config.context
    after = forgotten(before, *target.names)
    if after != before:
        cli.config.context = after
        cli.save_config()
    say(cli, data, f"Deleted {target.label}.")
