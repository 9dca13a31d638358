"""What `kavach group` and `kavach env` share: the chosen resource, and what is inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kavach.cli import actions, resources
from kavach.cli.context import resolve_env, resolve_group, resolve_org
from kavach.cli.resources import KINDS, Resource, expect_object, list_all

if TYPE_CHECKING:
    from kavach.cli.app import App


def organization(cli: App, org: str | None) -> Resource:
    """Return the organization --org names, else the active one."""
    return resources.load_org(cli.client, resolve_org(cli.context, org))


def secret_group(cli: App, org: str | None, group: str | None) -> Resource:
    """Return the secret group --org/--group name, else the active one."""
    return resources.load_group(cli.client, resolve_group(cli.context, org, group))


def environment(cli: App, org: str | None, group: str | None, env: str | None) -> Resource:
    """Return the environment --org/--group/--env name, else the active one."""
    return resources.load_env(cli.client, resolve_env(cli.context, org, group, env))


def create(cli: App, parent: Resource, kind: str, name: str, description: str | None) -> None:
    """Create a `kind` called `name` in `parent`, and say so."""
    body = {"name": name} if description is None else {"name": name, "description": description}
    data = expect_object(cli.client.post(f"{parent.path}/{KINDS[kind][0]}", body))
    created = Resource(kind, data, parent)
    actions.say(cli, created.data, f"Created {created.label}.")


def show_children(cli: App, parent: Resource, kind: str, active: str | None) -> None:
    """List the `kind`s in `parent`, marking the `active` one."""
    collection, noun = KINDS[kind]
    rows = list_all(cli.client, f"{parent.path}/{collection}")
    title = f"{noun.capitalize()}s in {parent.label}"
    actions.show_list(cli, rows, active, title=title, empty=f"No {noun}s in {parent.label}.")
