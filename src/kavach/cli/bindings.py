"""Grant, revoke and list roles on an organization, secret group or environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer._click.exceptions import UsageError

from kavach.cli import render
from kavach.cli.actions import confirm, human_rows, say
from kavach.cli.resources import KINDS, Object, Resource, expect_object, list_all

if TYPE_CHECKING:
    from kavach.cli.app import App

EmailOption = Annotated[
    str | None,
    typer.Option(
        "--email",
        help="The invitee, by e-mail address: the role applies at a sign-in with it verified.",
        metavar="ADDRESS",
    ),
]
PendingFlag = Annotated[
    bool,
    typer.Option("--pending", help="Invites not yet accepted, instead of roles held."),
]
COLUMNS = [
    ("subject", "Subject"),
    ("type", "Type"),
    ("role", "Role"),
    ("source", "Inherited from"),
]
PENDING_COLUMNS = [
    ("invitee", "Invitee"),
    ("type", "Type"),
    ("role", "Role"),
    ("granted_by", "Invited by"),
    ("created_at", "Since"),
]


def subject(
    ctx: typer.Context, user: str | None, user_group: str | None, email: str | None = None
) -> dict[str, str]:
    """Return the request body naming exactly one of --user, --user-group and --email."""
    given = {
        key: value
        for key, value in (("user", user), ("user_group", user_group), ("email", email))
        if value is not None
    }
    if len(given) == 1:
        if user_group is not None and ctx.params.get("pending"):
            message = "--pending names a login or an address: user groups are not invited"
            raise UsageError(message, ctx=ctx)
        return given
    allowed = "-u/--user LOGIN or --user-group NAME"
    if "email" in ctx.params:
        allowed = "-u/--user LOGIN, --user-group NAME or --email ADDRESS"
    raise UsageError(f"pass exactly one of {allowed}", ctx=ctx)


def _who(body: dict[str, str]) -> str:
    if "user" in body:
        return f"user {body['user']}"
    return f"user group {body['user_group']}" if "user_group" in body else body["email"]


def grant(cli: App, target: Resource, who: dict[str, str], role: str) -> None:
    """Give `who` the `role` on `target` (or change the role it has there).

    A login nobody has signed in with, or an address, is invited: the role waits for them.
    """
    answer = expect_object(cli.client.post(f"{target.path}/members", {**who, "role": role}))
    if answer.get("pending") is True:
        when = "they first sign in" if "user" in who else "they sign in with that address"
        line = (
            f"Invited {_who(who)} as {role} on {target.label}: pending until {when} "
            f"(`list-bindings --pending` shows it, `revoke --pending` withdraws it)."
        )
        say(cli, answer, line)
        return
    say(cli, answer, f"Granted {role} on {target.label} to {_who(who)}.")


def revoke(cli: App, target: Resource, who: dict[str, str], *, yes: bool, pending: bool) -> None:
    """Remove `who`'s role on `target`, or their invite there, after confirmation."""
    if pending or "email" in who:
        confirm(cli, f"withdraw the invite of {_who(who)} on {target.label}", yes=yes)
        data = cli.client.request("DELETE", f"{target.path}/members/pending", json=who)
        say(cli, data, f"Withdrew the invite of {_who(who)} on {target.label}.")
        return
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


def _pending_row(invite: Object) -> Object:
    granter = invite.get("granted_by") or {}
    is_login = invite.get("login") is not None
    return {
        "invitee": invite.get("login") if is_login else invite.get("email"),
        "type": "login" if is_login else "e-mail",
        "role": invite.get("role"),
        "granted_by": granter.get("login"),
        "created_at": invite.get("created_at"),
    }


def show(cli: App, target: Resource, *, pending: bool = False) -> None:
    """List who has which role on `target`, directly or inherited, or who is invited there."""
    if pending:
        invites = list_all(cli.client, f"{target.path}/members/pending")
        render.output(
            cli,
            render.listing(invites),
            lambda: render.table(
                cli,
                human_rows([_pending_row(invite) for invite in invites], "created_at"),
                PENDING_COLUMNS,
                title=f"Invites pending on {target.label}",
                empty=f"No invites are pending on {target.label}.",
            ),
        )
        return
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
