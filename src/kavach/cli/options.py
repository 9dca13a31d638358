"""Options shared by many commands, declared once as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
import typer.core

from kavach.cli import completion


def _value_hint(param: Any, ctx: Any) -> str | None:
    """Name an option's value by its metavar (or its name), never by a `<str>` type hint."""
    if not isinstance(param, typer.core.TyperOption):
        return None  # an argument is shown by its name (or metavar) already
    if param.is_flag or param.count:
        return None
    return param.metavar or (param.name or "value").upper()


def _metavar(option: typer.core.TyperOption, ctx: Any) -> str:
    """Return the name of an option's value in help: its metavar, else its name in capitals."""
    return _value_hint(option, ctx) or ""


# Typer shows an option's Python type in help (`--org <str>`); help reads as Click's does
# instead, values named in capitals (`--org ORG`).
typer.core.TyperOption.make_metavar = _metavar  # type: ignore[method-assign,assignment]


def command_group(**settings: Any) -> typer.Typer:
    """Return a Typer app whose help is plain text: no boxes, no rich import, no <type> hints."""
    return typer.Typer(rich_markup_mode=None, **settings)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
OrgOption = Annotated[
    str | None,
    typer.Option(
        "--org",
        help="Organization (default: KAVACH_ORG, .kavach.yaml or the active one).",
        autocompletion=completion.organizations,
    ),
]
GroupOption = Annotated[
    str | None,
    typer.Option(
        "--group",
        help="Secret group (default: KAVACH_GROUP, .kavach.yaml or the active one).",
        autocompletion=completion.groups,
    ),
]
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        help="Environment (default: KAVACH_ENV, .kavach.yaml or the active one).",
        autocompletion=completion.environments,
    ),
]
RevealFlag = Annotated[
    bool, typer.Option("--reveal", help="Show secret values instead of masking them.")
]
YesFlag = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal)."),
]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="A short description.")
]
CascadeFlag = Annotated[bool, typer.Option("--cascade", help="Also delete everything inside it.")]
ForceDeleteFlag = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Delete even though other environments' values refer to its secrets (their "
        "reads then fail).",
    ),
]

Role = Literal["viewer", "editor", "admin", "owner"]
RoleOption = Annotated[
    Role, typer.Option("--role", "-r", help="Role to grant: viewer, editor, admin or owner.")
]
UserOption = Annotated[
    str | None, typer.Option("--user", "-u", help="The user, by login.", metavar="LOGIN")
]
UserGroupOption = Annotated[
    str | None,
    typer.Option("--user-group", help="The user group, by name.", metavar="NAME"),
]
VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version",
        "-v",
        help="A version: its id, number (3 or v3), latest or latest~N (default: the latest).",
        metavar="VERSION",
    ),
]
MessageOption = Annotated[
    str,
    typer.Option("--message", "-m", help="The commit message.", metavar="MESSAGE"),
]
