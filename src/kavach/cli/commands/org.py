"""`kavach org …`: organizations, the active one, and who has which role on them."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, bindings
from kavach.cli.app import get_app
from kavach.cli.context import resolve_org
from kavach.cli.options import (
    CascadeFlag,
    DescriptionOption,
    JsonFlag,
    OrgOption,
    RoleOption,
    UserGroupOption,
    UserOption,
    YesFlag,
    command_group,
)
from kavach.cli.resources import Resource, expect_object, find_org, list_all, load_org

app = command_group(help="Manage organizations.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Organization name.", show_default=False)]


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    description: DescriptionOption = None,
    json: JsonFlag = False,
) -> None:
    """Create an organization; you become its owner."""
    cli = get_app(ctx, json=json)
    body = {"name": name} if description is None else {"name": name, "description": description}
    created = Resource("organization", expect_object(cli.client.post("/organizations/", body)))
    actions.say(cli, created.data, f"Created {created.label}.")


@app.command("list")
def list_(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List the organizations you can see, with your role; `*` marks the active one."""
    cli = get_app(ctx, json=json)
    rows = list_all(cli.client, "/organizations/")
    active = cli.context.organization
    actions.show_list(cli, rows, active, title=None, empty="No organizations.")


@app.command()
def activate(ctx: typer.Context, name: NameArgument, json: JsonFlag = False) -> None:
    """Make an organization the default for other commands."""
    cli = get_app(ctx, json=json)
    actions.activate(cli, find_org(cli.client, name))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    cascade: CascadeFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete an organization (owners only)."""
    cli = get_app(ctx, json=json)
    actions.delete(cli, find_org(cli.client, name), cascade=cascade, yes=yes)


@app.command()
def grant(
    ctx: typer.Context,
    role: RoleOption,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Give a user or user group a role on the organization (and all inside it).

    A login nobody has signed in with yet, or an --email address, is invited: the role
    applies when that person signs in.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    ref = resolve_org(cli.context, org)
    target = load_org(cli.client, ref)
    bindings.grant(cli, target, who, role)


@app.command()
def revoke(
    ctx: typer.Context,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    pending: bindings.PendingFlag = False,
    org: OrgOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user's or user group's role on the organization.

    With --pending (or --email): withdraw an invite that has not been accepted.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    ref = resolve_org(cli.context, org)
    target = load_org(cli.client, ref)
    bindings.revoke(cli, target, who, yes=yes, pending=pending)


@app.command("list-bindings")
def list_bindings(
    ctx: typer.Context,
    org: OrgOption = None,
    pending: bindings.PendingFlag = False,
    json: JsonFlag = False,
) -> None:
    """List who has which role on the organization (--pending: who is invited)."""
    cli = get_app(ctx, json=json)
    ref = resolve_org(cli.context, org)
    bindings.show(cli, load_org(cli.client, ref), pending=pending)
