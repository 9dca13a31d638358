"""`kavach group …`: secret groups in an organization, and who has which role on them."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, bindings
from kavach.cli.app import get_app
from kavach.cli.context import resolve_group, resolve_org
from kavach.cli.options import (
    CascadeFlag,
    DescriptionOption,
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
    find_group,
    load_group,
    load_org,
)

app = typer.Typer(
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
    ref = resolve_org(cli.config.context, org)
    parent = load_org(cli.client, ref)
    body = {"name": name} if description is None else {"name": name, "description": description}
    data = expect_object(cli.client.post(f"{parent.path}/secret-groups", body))
    created = Resource("secret_group", data, parent)
    actions.say(cli, created.data, f"Created {created.label}.")


@app.command("list")
def list_(ctx: typer.Context, org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the organization's secret groups, with your role; `*` marks the active one."""
    cli = get_app(ctx, json=json)
    active = cli.config.context
    ref = resolve_org(active, org)
    parent = load_org(cli.client, ref)
    rows = expect_list(cli.client.get(f"{parent.path}/secret-groups"))
    current = active.secret_group if active.organization == parent.name else None
    empty = f"No secret groups in {parent.label}."
    actions.show_list(cli, rows, current, title=f"Secret groups in {parent.label}", empty=empty)


@app.command()
def activate(
    ctx: typer.Context, name: NameArgument, org: OrgOption = None, json: JsonFlag = False
) -> None:
    """Make a secret group (and its organization) the default for other commands."""
    cli = get_app(ctx, json=json)
    ref = resolve_org(cli.config.context, org)
    actions.activate(cli, find_group(cli.client, load_org(cli.client, ref), name))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    cascade: CascadeFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete a secret group (owners only)."""
    cli = get_app(ctx, json=json)
    ref = resolve_org(cli.config.context, org)
    target = find_group(cli.client, load_org(cli.client, ref), name)
    actions.delete(cli, target, cascade=cascade, yes=yes)


@app.command()
def grant(
    ctx: typer.Context,
    role: RoleOption,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    json: JsonFlag = False,
) -> None:
    """Give a user or user group a role on the secret group (and its environments)."""
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group)
    ref = resolve_group(cli.config.context, org, group)
    bindings.grant(cli, load_group(cli.client, ref), who, role)


@app.command()
def revoke(
    ctx: typer.Context,
    user: UserOption = None,
    user_group: UserGroupOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user's or user group's role on the secret group."""
    cli = get_app(ctx, json=json)
    who = bindings.subject(ctx, user, user_group)
    ref = resolve_group(cli.config.context, org, group)
    bindings.revoke(cli, load_group(cli.client, ref), who, yes=yes)


@app.command("list-bindings")
def list_bindings(
    ctx: typer.Context, org: OrgOption = None, group: GroupOption = None, json: JsonFlag = False
) -> None:
    """List who has which role on the secret group, directly or from its organization."""
    cli = get_app(ctx, json=json)
    ref = resolve_group(cli.config.context, org, group)
    bindings.show(cli, load_group(cli.client, ref))
