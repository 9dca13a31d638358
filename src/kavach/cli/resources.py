"""Find organizations, secret groups, environments and user groups by name on the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kavach.cli.context import EnvRef, GroupRef, OrgRef
from kavach.cli.errors import ApiError, CliError, NotFound

if TYPE_CHECKING:
    from kavach.cli.client import ApiClient

Object = dict[str, Any]
PAGE_LIMIT = 1000  # the server's largest page

# kind -> (URL collection, words for people)
KINDS = {
    "organization": ("organizations", "organization"),
    "secret_group": ("secret-groups", "secret group"),
    "environment": ("environments", "environment"),
}


def _unexpected(what: str) -> ApiError:
    return ApiError(200, "unexpected_response", f"unexpected answer from the server: {what}")


def expect_object(data: Any) -> Object:
    """Return `data` if the server sent an object, else fail as a server error."""
    if not isinstance(data, dict):
        raise _unexpected("expected an object")
    return data


def expect_list(data: Any) -> list[Object]:
    """Return `data` if the server sent a list of objects, else fail as a server error."""
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise _unexpected("expected a list of objects")
    return data


def expect_page(data: Any) -> tuple[list[Object], str | None]:
    """Return a page's items and next cursor, else fail as a server error."""
    page = expect_object(data)
    following = page.get("next")
    if following is not None and not isinstance(following, str):
        raise _unexpected("a page's next cursor is not a string")
    return expect_list(page.get("items")), following


def page(
    client: ApiClient, path: str, params: dict[str, Any] | None = None, *, cursor: str | None = None
) -> tuple[list[Object], str | None]:
    """Return one page of the listing at `path` (from `cursor`) and its next cursor."""
    query = {"limit": PAGE_LIMIT, **(params or {})}
    if cursor is not None:
        query["cursor"] = cursor
    return expect_page(client.get(path, params=query))


def pages(
    client: ApiClient, path: str, params: dict[str, Any] | None = None
) -> Iterator[list[Object]]:
    """Yield each page of the listing at `path`, following `next` until the last."""
    cursor: str | None = None
    while True:
        items, following = page(client, path, params, cursor=cursor)
        yield items
        if following is None:
            return
        if following == cursor:  # a server that repeats itself would be followed forever
            raise _unexpected("a page's next cursor is the one it was asked for")
        cursor = following


def list_all(client: ApiClient, path: str, params: dict[str, Any] | None = None) -> list[Object]:
    """Return every item of the listing at `path`, across all its pages."""
    return [item for items in pages(client, path, params) for item in items]


def segment(value: str | int) -> str:
    """Return `value` escaped as one URL path segment."""
    text = str(value)
    # "." and ".." would be collapsed by URL normalisation into another route.
    if text in ("", ".", ".."):
        raise CliError(f"invalid name {text!r}")
    return quote(text, safe="")


@dataclass(frozen=True)
class Resource:
    """An organization, secret group or environment as the server returned it."""

    kind: str
    data: Object
    parent: Resource | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data.get("id"), str | int) or not self.data.get("name"):
            raise _unexpected(f"a {self.noun} without an id or a name")

    @property
    def id(self) -> str | int:
        """Return the server's id, as sent (for request bodies)."""
        ident: str | int = self.data["id"]
        return ident

    @property
    def name(self) -> str:
        """Return the resource's own name."""
        return str(self.data["name"])

    @property
    def noun(self) -> str:
        """Return what people call this kind of resource."""
        return KINDS[self.kind][1]

    @property
    def names(self) -> list[str]:
        """Return the names from the organization down to this resource."""
        return [*(self.parent.names if self.parent else []), self.name]

    @property
    def qualified(self) -> str:
        """Return the path of names, e.g. `acme/web/prod`."""
        return "/".join(self.names)

    @property
    def label(self) -> str:
        """Return e.g. `secret group acme/web`, for messages."""
        return f"{self.noun} {self.qualified}"

    @property
    def path(self) -> str:
        """Return the API path of this resource."""
        return f"/{KINDS[self.kind][0]}/{segment(self.id)}"


def find_org(client: ApiClient, name: str) -> Resource:
    """Return the organization called `name`."""
    try:
        data = client.get(f"/organizations/by-name/{segment(name)}")
    except ApiError as exc:
        if exc.status == 404:
            raise NotFound(f"organization {name!r} not found, or you have no access to it") from exc
        raise
    return Resource("organization", expect_object(data))


def _find_child(client: ApiClient, parent: Resource, kind: str, name: str) -> Resource:
    collection, noun = KINDS[kind]
    rows = list_all(client, f"{parent.path}/{collection}", {"name": name})
    # Matched here too: the filter is the server's to apply, the exact name is ours to check.
    for row in rows:
        if row.get("name") == name:
            return Resource(kind, row, parent)
    raise NotFound(f"{noun} {name!r} not found in {parent.label}, or you have no access to it")


def find_group(client: ApiClient, org: Resource, name: str) -> Resource:
    """Return the secret group called `name` in `org`."""
    return _find_child(client, org, "secret_group", name)


def find_env(client: ApiClient, group: Resource, name: str) -> Resource:
    """Return the environment called `name` in `group`."""
    return _find_child(client, group, "environment", name)


def load_org(client: ApiClient, ref: OrgRef) -> Resource:
    """Return the organization `ref` names."""
    return find_org(client, ref.organization)


def load_group(client: ApiClient, ref: GroupRef) -> Resource:
    """Return the secret group `ref` names (with its organization as parent)."""
    return find_group(client, load_org(client, ref), ref.secret_group)


def load_env(client: ApiClient, ref: EnvRef) -> Resource:
    """Return the environment `ref` names (with its group and organization as parents)."""
    return find_env(client, load_group(client, ref), ref.environment)


def user_groups(client: ApiClient, org: Resource, name: str | None = None) -> list[Object]:
    """Return the user groups of `org` (only those called `name`, if given)."""
    params: dict[str, Any] = {"organization_id": org.id}
    if name is not None:
        params["name"] = name
    return list_all(client, "/user-groups/", params)


def find_user_group(client: ApiClient, org: Resource, name: str) -> Object:
    """Return the user group called `name` in `org`."""
    for row in user_groups(client, org, name):
        if row.get("name") == name and isinstance(row.get("id"), str | int):
            return row
    raise NotFound(f"user group {name!r} not found in {org.label}, or you have no access to it")
