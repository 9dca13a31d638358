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


def _by_names(*names: str) -> str:
    """Return the API path that finds a resource by the names on the way down to it."""
    path = f"/organizations/by-name/{segment(names[0])}"
    for collection, name in zip(("secret-groups", "environments"), names[1:], strict=False):
        path += f"/{collection}/{segment(name)}"
    return path


def _get_by_names(client: ApiClient, *names: str) -> Object | None:
    """Return what the names lead to, or None when the server answers 404.

    The server answers the same 404 for a resource that does not exist and for one the
    caller may not see, so None never tells which.
    """
    try:
        return expect_object(client.get(_by_names(*names)))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _org_missing(name: str) -> NotFound:
    return NotFound(f"organization {name!r} not found, or you have no access to it")


def _child_missing(kind: str, name: str, parent: str) -> NotFound:
    noun = KINDS[kind][1]
    return NotFound(f"{noun} {name!r} not found in {parent}, or you have no access to it")


def _parent(data: Object, key: str, kind: str, name: str, parent: Resource | None) -> Resource:
    """Return the parent a resource's answer names by id, under the name it was asked by."""
    return Resource(kind, {"id": data.get(key), "name": name}, parent)


def find_org(client: ApiClient, name: str) -> Resource:
    """Return the organization called `name`."""
    data = _get_by_names(client, name)
    if data is None:
        raise _org_missing(name)
    return Resource("organization", data)


def find_group(client: ApiClient, org: Resource, name: str) -> Resource:
    """Return the secret group called `name` in `org`."""
    data = _get_by_names(client, org.name, name)
    if data is None:
        raise _child_missing("secret_group", name, org.label)
    return Resource("secret_group", data, org)


def find_env(client: ApiClient, group: Resource, name: str) -> Resource:
    """Return the environment called `name` in `group`."""
    data = _get_by_names(client, *group.names, name)
    if data is None:
        raise _child_missing("environment", name, group.label)
    return Resource("environment", data, group)


def load_org(client: ApiClient, ref: OrgRef) -> Resource:
    """Return the organization `ref` names."""
    return find_org(client, ref.organization)


def load_group(client: ApiClient, ref: GroupRef) -> Resource:
    """Return the secret group `ref` names (with its organization as parent), in one request.

    Only when it is not found does a second request say whether the organization was.
    """
    data = _get_by_names(client, ref.organization, ref.secret_group)
    if data is None:
        org = find_org(client, ref.organization)
        raise _child_missing("secret_group", ref.secret_group, org.label)
    org = _parent(data, "organization_id", "organization", ref.organization, None)
    return Resource("secret_group", data, org)


def load_env(client: ApiClient, ref: EnvRef) -> Resource:
    """Return the environment `ref` names (with its group and organization), in one request.

    Only when it is not found do further requests say which level was not.
    """
    data = _get_by_names(client, ref.organization, ref.secret_group, ref.environment)
    if data is None:
        group = load_group(client, ref)
        raise _child_missing("environment", ref.environment, group.label)
    org = _parent(data, "organization_id", "organization", ref.organization, None)
    group = _parent(data, "secret_group_id", "secret_group", ref.secret_group, org)
    return Resource("environment", data, group)


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
