"""`kavach user-group …`: named sets of users in an organization, and their members."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, render
from kavach.cli.app import App, get_app
from kavach.cli.context import resolve_org
from kavach.cli.options import DescriptionOption, JsonFlag, OrgOption, YesFlag, command_group
from kavach.cli.resources import (
    Object,
    Resource,
    expect_object,
    find_user_group,
    list_all,
    load_org,
    segment,
    user_groups,
)

app = command_group(
    help="Manage user groups (in --org or the active organization).", no_args_is_help=True
)
members = command_group(help="Manage the members of a user group.", no_args_is_help=True)
app.add_typer(members, name="members")

NameArgument = Annotated[str, typer.Argument(help="User group name.", show_default=False)]
LoginArgument = Annotated[str, typer.Argument(help="The user's login.", show_default=False)]

GROUP_COLUMNS = [("name", "Name"), ("description", "Description"), ("created_at", "Created")]
MEMBER_COLUMNS = [("login", "Login"), ("name", "Name"), ("added_at", "Added")]


def _org(cli: App, org: str | None) -> Resource:
    ref = resolve_org(cli.context, org)
    return load_org(cli.client, ref)


def _group(cli: App, org: str | None, name: str) -> tuple[Resource, Object]:
    parent = _org(cli, org)
    return parent, find_user_group(cli.client, parent, name)


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    description: DescriptionOption = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Create a user group in the organization."""
    cli = get_app(ctx, json=json)
    parent = _org(cli, org)
    body: Object = {"organization_id": parent.id, "name": name}
    if description is not None:
        body["description"] = description
    created = expect_object(cli.client.post("/user-groups/", body))
    actions.say(cli, created, f"Created user group {created.get('name', name)} in {parent.label}.")


@app.command("list")
def list_(ctx: typer.Context, org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the organization's user groups."""
    cli = get_app(ctx, json=json)
    parent = _org(cli, org)
    rows = user_groups(cli.client, parent)
    render.output(
        cli,
        render.listing(rows),
        lambda: render.table(
            cli,
            actions.human_rows(rows, "created_at"),
            GROUP_COLUMNS,
            title=f"User groups in {parent.label}",
            empty=f"No user groups in {parent.label}.",
        ),
    )


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete a user group (its members keep their own roles)."""
    cli = get_app(ctx, json=json)
    parent, group = _group(cli, org, name)
    actions.confirm(cli, f"delete user group {name} in {parent.label}", yes=yes)
    data = cli.client.delete(f"/user-groups/{segment(group['id'])}")
    actions.say(cli, data, f"Deleted user group {name} in {parent.label}.")


@members.command("add")
def add_member(
    ctx: typer.Context,
    group: NameArgument,
    login: LoginArgument,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Add a user to a user group."""
    cli = get_app(ctx, json=json)
    _, found = _group(cli, org, group)
    path = f"/user-groups/{segment(found['id'])}/members"
    member = expect_object(cli.client.post(path, {"user": login}))
    actions.say(cli, member, f"Added {login} to user group {group}.")


@members.command("remove")
def remove_member(
    ctx: typer.Context,
    group: NameArgument,
    login: LoginArgument,
    org: OrgOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Remove a user from a user group."""
    cli = get_app(ctx, json=json)
    _, found = _group(cli, org, group)
    actions.confirm(cli, f"remove {login} from user group {group}", yes=yes)
    path = f"/user-groups/{segment(found['id'])}/members"
    data = cli.client.request("DELETE", path, json={"user": login})
    actions.say(cli, data, f"Removed {login} from user group {group}.")


@members.command("list")
def list_members(
    ctx: typer.Context, group: NameArgument, org: OrgOption = None, json: JsonFlag = False
) -> None:
    """List the members of a user group."""
    cli = get_app(ctx, json=json)
    _, found = _group(cli, org, group)
    rows = list_all(cli.client, f"/user-groups/{segment(found['id'])}/members")
    render.output(
        cli,
        render.listing(rows),
        lambda: render.table(
            cli,
            actions.human_rows(rows, "added_at"),
            MEMBER_COLUMNS,
            title=f"Members of user group {group}",
            empty=f"User group {group} has no members.",
        ),
    )
