"""`kavach env …`: environments in a secret group, and who has which role on them."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, bindings
from kavach.cli.app import get_app
from kavach.cli.context import resolve_env, resolve_group
from kavach.cli.options import (
    CascadeFlag,
    DescriptionOption,
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    RoleOption,
    UserGroupOption,
    UserOption,
    YesFlag,
)
from kavach.cli.resources import (
    Resource,
    expect_list,
    expect_object,
    find_env,
    load_env,
    load_group,
)

app = typer.Typer(
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
    ref = resolve_group(cli.config.context, org, group)
    parent = load_group(cli.client, ref)
    body = {"name": name} if description is None else {"name": name, "description": description}
    data = expect_object(cli.client.post(f"{parent.path}/environments", body))
    created = Resource("environment", data, parent)
    actions.say(cli, created.data, f"Created {created.label}.")


@app.command("list")
def list_(
    ctx: typer.Context, org: OrgOption = None, group: GroupOption = None, json: JsonFlag = False
) -> None:
    """List the secret group's environments, with your role; `*` marks the active one."""
    cli = get_app(ctx, json=json)
    active = cli.config.context
    ref = resolve_group(active, org, group)
    parent = load_group(cli.client, ref)
    rows = expect_list(cli.client.get(f"{parent.path}/environments"))
    same = parent.names == [active.organization, active.secret_group]
    current = active.environment if same else None
    empty = f"No environments in {parent.label}."
    actions.show_list(cli, rows, current, title=f"Environments in {parent.label}", empty=empty)


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
    ref = resolve_group(cli.config.context, org, group)
    actions.activate(cli, find_env(cli.client, load_group(cli.client, ref), name))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    cascade: CascadeFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete an environment (owners only)."""
    cli = get_app(ctx, json=json)
    ref = resolve_group(cli.config.context, org, group)
    target = find_env(cli.client, load_group(cli.client, ref), name)
    actions.delete(cli, target, cascade=cascade, yes=yes)


@app.command()
def grant(
    ctx: typer.Context,
    role: RoleOption,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Give a user or user group a role on the environment."""
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group)
    ref = resolve_env(cli.config.context, org, group, env)
    bindings.grant(cli, load_env(cli.client, ref), who, role)


@app.command()
def revoke(
    ctx: typer.Context,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user's or user group's role on the environment."""
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group)
    ref = resolve_env(cli.config.context, org, group, env)
    bindings.revoke(cli, load_env(cli.client, ref), who, yes=yes)


@app.command("list-bindings")
def list_bindings(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List who has which role on the environment, directly or from its parents."""
    cli = get_app(ctx, json=json)
    ref = resolve_env(cli.config.context, org, group, env)
    bindings.show(cli, load_env(cli.client, ref))
