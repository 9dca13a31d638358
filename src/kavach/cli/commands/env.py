"""`kavach env …`: environments in a secret group, and who has which role on them."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, bindings
from kavach.cli.app import get_app
from kavach.cli.commands import hierarchy
from kavach.cli.options import (
    CascadeFlag,
    DescriptionOption,
    EnvOption,
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
from kavach.cli.resources import find_env

app = command_group(
    help="Manage environments (in --org/--group or the active secret group).",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Environment name.", show_default=False)]


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    description: DescriptionOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    json: JsonFlag = False,
) -> None:
    """Create an environment in the secret group; you become its owner."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.secret_group(cli, org, group)
    hierarchy.create(cli, parent, "environment", name, description)


@app.command("list")
def list_(
    ctx: typer.Context, org: OrgOption = None, group: GroupOption = None, json: JsonFlag = False
) -> None:
    """List the secret group's environments, with your role; `*` marks the active one."""
    cli = get_app(ctx, json=json)
    active = cli.context
    parent = hierarchy.secret_group(cli, org, group)
    same = parent.names == [active.organization, active.secret_group]
    hierarchy.show_children(cli, parent, "environment", active.environment if same else None)


@app.command()
def activate(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    json: JsonFlag = False,
) -> None:
    """Make an environment (and its secret group and organization) the default."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.secret_group(cli, org, group)
    actions.activate(cli, find_env(cli.client, parent, name))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    cascade: CascadeFlag = False,
    force: ForceDeleteFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete an environment (owners only)."""
    cli = get_app(ctx, json=json)
    parent = hierarchy.secret_group(cli, org, group)
    actions.delete(cli, find_env(cli.client, parent, name), cascade=cascade, yes=yes, force=force)


@app.command()
def grant(
    ctx: typer.Context,
    role: RoleOption,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Give a user or user group a role on the environment.

    A login nobody has signed in with yet, or an --email address, is invited: the role
    applies when that person signs in.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    bindings.grant(cli, hierarchy.environment(cli, org, group, env), who, role)


@app.command()
def revoke(
    ctx: typer.Context,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    email: bindings.EmailOption = None,
    pending: bindings.PendingFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user's or user group's role on the environment.

    With --pending (or --email): withdraw an invite that has not been accepted.
    """
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group, email)
    bindings.revoke(cli, hierarchy.environment(cli, org, group, env), who, yes=yes, pending=pending)


@app.command("list-bindings")
def list_bindings(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    pending: bindings.PendingFlag = False,
    json: JsonFlag = False,
) -> None:
    """List who has which role on the environment, directly or from its parents.

    With --pending: who is invited to it and has not signed in yet.
    """
    cli = get_app(ctx, json=json)
    bindings.show(cli, hierarchy.environment(cli, org, group, env), pending=pending)
