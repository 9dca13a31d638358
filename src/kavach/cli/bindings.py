"""Grant, revoke and list roles on an organization, secret group or environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from typer._click.exceptions import UsageError

from kavach.cli import render
from kavach.cli.actions import confirm, say
from kavach.cli.resources import KINDS, Object, Resource, expect_object, list_all

if TYPE_CHECKING:
    from kavach.cli.app import App

COLUMNS = [
    ("subject", "Subject"),
    ("type", "Type"),
    ("role", "Role"),
    ("source", "Inherited from"),
]


def subject(ctx: typer.Context, user: str | None, user_group: str | None) -> dict[str, str]:
    """Return the request body naming exactly one of --user and --user-group."""
    if user is not None and user_group is None:
        return {"user": user}
    if user_group is not None and user is None:
        return {"user_group": user_group}
    raise UsageError("pass exactly one of -u/--user LOGIN or --user-group NAME", ctx=ctx)


def _who(body: dict[str, str]) -> str:
    return f"user {body['user']}" if "user" in body else f"user group {body['user_group']}"


def grant(cli: App, target: Resource, who: dict[str, str], role: str) -> None:
    """Give `who` the `role` on `target` (or change the role it has there)."""
    binding = expect_object(cli.client.post(f"{target.path}/members", {**who, "role": role}))
    say(cli, binding, f"Granted {role} on {target.label} to {_who(who)}.")


def revoke(cli: App, target: Resource, who: dict[str, str], *, yes: bool) -> None:
    """Remove `who`'s role on `target`, after confirmation."""
    confirm(cli, f"revoke {_who(who)}'s role on {target.label}", yes=yes)
    data = cli.client.request("DELETE", f"{target.path}/members", json=who)
    say(cli, data, f"Revoked {_who(who)}'s role on {target.label}.")


def _row(binding: Object) -> Object:
    user = binding.get("user") or {}
    group = binding.get("user_group") or {}
    is_user = binding.get("subject_type") == "user"
    source = None
    if binding.get("inherited"):
        noun = KINDS.get(str(binding.get("resource_type")), ("", "resource"))[1]
        source = f"{noun} {binding.get('resource_name') or binding.get('resource_id')}"
    return {
        "subject": user.get("login") if is_user else group.get("name"),
        "type": "user" if is_user else "user group",
        "role": binding.get("role"),
        "source": source,
    }


def show(cli: App, target: Resource) -> None:
    """List who has which role on `target`, directly or inherited from a parent."""
    bindings = list_all(cli.client, f"{target.path}/members")
    render.output(
        cli,
        render.listing(bindings),
        lambda: render.table(
            cli,
            [_row(binding) for binding in bindings],
            COLUMNS,
            title=f"Roles on {target.label}",
            empty=f"Nobody has a role on {target.label}.",
        ),
    )
