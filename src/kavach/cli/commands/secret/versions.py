"""`kavach secret list/details/history`: versions and one secret's changes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli import completion, render, secrets_api
from kavach.cli.app import get_app
from kavach.cli.errors import CliError
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    RevealFlag,
    command_group,
)
from kavach.cli.resources import Object, expect_list, segment
from kavach.cli.target import resolve_target
from kavach.formats.common import NAME_RULE, is_secret_name

app = command_group()
PANEL = "Versions"
READ_PANEL = "Reading"

VERSION_COLUMNS = [
    ("id", "ID"),
    ("seq", "Seq"),
    ("message", "Message"),
    ("author_label", "Author"),
    ("secret_count", "Secrets"),
    ("created_at", "Date (UTC)"),
]
HISTORY_COLUMNS = [
    ("version_label", "Version"),
    ("change", "Change"),
    ("value", "Value"),
    ("author_label", "Author"),
    ("created_at", "Date (UTC)"),
    ("message", "Message"),
]
SECRET_COLUMNS = [("name", "Name"), ("value", "Value")]

NameArgument = Annotated[
    str,
    typer.Argument(
        help="The secret's name.", show_default=False, autocompletion=completion.secrets
    ),
]
LimitOption = Annotated[
    int, typer.Option("--limit", "-n", min=1, max=10_000, help="How many versions to show.")
]
CursorOption = Annotated[
    str | None,
    typer.Option(
        "--cursor", help="Show the versions after this cursor (paging).", metavar="CURSOR"
    ),
]
DetailsVersion = Annotated[
    str,
    typer.Option(
        "--version",
        "-v",
        help="The version: its id, number (3 or v3), latest or latest~N.",
        metavar="VERSION",
    ),
]


def short_date(value: Any) -> Any:
    """Return an ISO 8601 timestamp as `YYYY-MM-DD HH:MM` in UTC (tables stay narrow)."""
    from datetime import UTC, datetime

    parsed = render.when(value)
    if isinstance(parsed, datetime) and parsed.tzinfo is not None:
        return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return parsed


def _version_rows(rows: list[Object]) -> list[Object]:
    """Return version summaries with the author's label and a short date, for tables."""
    shown = []
    for row in rows:
        author = row.get("author")
        label = author.get("label") or author.get("type") if isinstance(author, dict) else None
        shown.append(
            {
                **row,
                "author_label": label,
                "created_at": short_date(row.get("created_at")),
                "sources_label": secrets_api.sources_label(row),
            }
        )
    return shown


def _version_columns(rows: list[Object]) -> list[tuple[str, str]]:
    """The versions' columns, with where their references reached when any has some."""
    if any(row.get("sources") for row in rows):
        return [*VERSION_COLUMNS, ("sources_label", "References at")]
    return VERSION_COLUMNS


@app.command("list", rich_help_panel=PANEL)
def list_(
    ctx: typer.Context,
    limit: LimitOption = 20,
    cursor: CursorOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the environment's versions, newest first."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    rows, following = secrets_api.versions(cli.client, target, limit=limit, cursor=cursor)

    def human() -> None:
        render.table(
            cli,
            _version_rows(rows),
            _version_columns(rows),
            title=f"Versions of {target.label}",
            empty=f"No versions in {target.label} yet.",
        )
        if following is not None:
            render.note(
                cli,
                f"Showing {len(rows)}; older ones: `kavach secret list --cursor {following}`.",
            )

    render.output(cli, render.listing(rows, following), human)


@app.command(rich_help_panel=PANEL)
def details(
    ctx: typer.Context,
    version: DetailsVersion,
    reveal: RevealFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show one version: who made it, when, why, and its secrets (masked unless --reveal)."""
    cli = get_app(ctx, json=json)
    secrets_api.check_version_id(version)
    target = resolve_target(cli, org, group, env)
    summary, values = secrets_api.details(cli.client, target, version)
    shown = {name: (value if reveal else None) for name, value in values.items()}
    data = {**summary, "secrets": shown}

    def human() -> None:
        row = _version_rows([summary])[0]
        render.fields(
            cli,
            [
                ("Version", secrets_api.label(summary)),
                ("Parent", summary.get("parent_id")),
                ("Message", summary.get("message")),
                ("Author", row.get("author_label")),
                ("Date", render.when(summary.get("created_at"))),
                ("Rollback of", summary.get("rollback_of")),
                ("Secrets", summary.get("secret_count")),
            ],
            title=f"{target.label}, {secrets_api.label(summary)}",
        )
        rows = [{"name": n, "value": render.mask(v, reveal=reveal)} for n, v in values.items()]
        render.table(cli, rows, SECRET_COLUMNS, empty="No secrets in this version.")

    render.output(cli, data, human)


@app.command(rich_help_panel=READ_PANEL)
def history(
    ctx: typer.Context,
    name: NameArgument,
    reveal: RevealFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show every change to one secret, newest first (values masked unless --reveal)."""
    cli = get_app(ctx, json=json)
    if not is_secret_name(name):
        raise CliError(f"{name!r} is not a valid secret name: {NAME_RULE}")
    target = resolve_target(cli, org, group, env)
    params = {"reveal": "true"} if reveal else None
    entries = expect_list(cli.client.get(f"{target.path}/{segment(name)}/history", params=params))

    def human() -> None:
        rows = []
        for entry in entries:
            version = entry.get("version") if isinstance(entry.get("version"), dict) else {}
            row = _version_rows([version or {}])[0]
            value = entry.get("value")
            if entry.get("change") == "removed":
                cell = render.EMPTY_CELL
            elif reveal:
                cell = render.mask(value, reveal=True)
            else:
                cell = render.MASK
            rows.append(
                {
                    **row,
                    "version_label": secrets_api.label(version),
                    "change": entry.get("change"),
                    "value": cell,
                }
            )
        render.table(cli, rows, HISTORY_COLUMNS, title=f"History of {name} in {target.label}")

    render.output(cli, entries, human)
