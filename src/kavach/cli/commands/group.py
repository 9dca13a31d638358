"""`kavach group …`: secret groups in an organization, and who has which role on them."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, bindings
from kavach.cli.app import get_app
from kavach.cli.commands import hierarchy
from kavach.cli.options import (
    CascadeFlag,
    DescriptionOption,
    ForceDeleteFlag,
    GroupOption,
    JsonFlag,
    OrgOption,
    RoleOption,
    UserGroupOption,
    UserOption,
    YesFlag,
    command_group,
)
from kavach.cli.resources import find_group

app = command_group(
    help="Manage secret groups (in --org or the active organization).", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="Secret group name.", show_default=False)]


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    description: DescriptionOption = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Create a secret group in the organization; you become its owner."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.organization(cli, org)
    hierarchy.create(cli, parent, "secret_group", name, description)


@app.command("list")
def list_(ctx: typer.Context, org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the organization's secret groups, with your role; `*` marks the active one."""
    cli = get_app(ctx, json=json)
    active = cli.context
    parent = hierarchy.organization(cli, org)
    current = active.secret_group if active.organization == parent.name else None
    hierarchy.show_children(cli, parent, "secret_group", current)


@app.command()
def activate(
    ctx: typer.Context, name: NameArgument, org: OrgOption = None, json: JsonFlag = False
) -> None:
    """Make a secret group (and its organization) the default for other commands."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.organization(cli, org)
    actions.activate(cli, find_group(cli.client, parent, name))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    cascade: CascadeFlag = False,
    force: ForceDeleteFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete a secret group (owners only)."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.organization(cli, org)
    actions.delete(cli, find_group(cli.client, parent, name), cascade=cascade, yes=yes, force=force)


@app.command()
def grant(
    ctx: typer.Context,
    role: RoleOption,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    json: JsonFlag = False,
) -> None:
    """Give a user or user group a role on the secret group (and its environments).

    A login nobody has signed in with yet, or an --email address, is invited: the role
    applies when that person signs in.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    bindings.grant(cli, hierarchy.secret_group(cli, org, group), who, role)


@app.command()
def revoke(
    ctx: typer.Context,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    pending: bindings.PendingFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user's or user group's role on the secret group.

    With --pending (or --email): withdraw an invite that has not been accepted.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    bindings.revoke(cli, hierarchy.secret_group(cli, org, group), who, yes=yes, pending=pending)


@app.command("list-bindings")
def list_bindings(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    pending: bindings.PendingFlag = False,
    json: JsonFlag = False,
) -> None:
    """List who has which role on the secret group, directly or from its organization.

    With --pending: who is invited to it and has not signed in yet.
    """
    cli = get_app(ctx, json=json)
    bindings.show(cli, hierarchy.secret_group(cli, org, group), pending=pending)
