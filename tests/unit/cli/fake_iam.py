"""An in-memory fake of the organization, group, environment, user-group and token API.

It follows the API description of these routes: the envelope, 201 on create, names checked
against the same pattern, 404 for what the caller may not see, 403 when the role is too low,
roles inherited down organization -> secret group -> environment and through user groups.
The caller is always USER (alice); other users exist only to be granted roles.
This module holds the state and the rules; fake_iam_routes maps requests onto them.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ROLES = ("viewer", "editor", "admin", "owner")
RANK = {role: rank for rank, role in enumerate(ROLES)}
CREATED = "2025-01-01T00:00:00Z"
USERS: dict[str, dict[str, Any]] = {
    "alice": {"id": "u-1", "login": "alice", "name": "Alice Example"},
    "bob": {"id": "u-2", "login": "bob", "name": "Bob Example"},
    "carol": {"id": "u-3", "login": "carol", "name": None},
}
CALLER = "u-1"
COLLECTIONS = {"organizations": "organization", "secret-groups": "secret_group"}
COLLECTIONS["environments"] = "environment"
CHILDREN = {"organization": "secret-groups", "secret_group": "environments"}
DEFAULT_TOKEN_LIFETIME = 90 * 86400
MAX_TOKEN_LIFETIME = 365 * 86400


class Failure(Exception):
    """An error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, json={"success": True, "data": data, "error": None, "error_code": None}
    )


def page_of(rows: list[Any], params: dict[str, str]) -> dict[str, Any]:
    """Return the page of `rows` that `limit` and `cursor` (an index, as text) ask for."""
    limit = int(params.get("limit", "100"))
    if not 1 <= limit <= 1000:
        raise Failure(422, "validation_failed", f"limit {limit} is not in 1..1000")
    cursor = params.get("cursor", "0")
    if not cursor.isdigit():
        raise Failure(422, "validation_failed", f"invalid cursor {cursor!r}")
    start = int(cursor)
    end = start + limit
    return {"items": rows[start:end], "next": str(end) if end < len(rows) else None}


def paged(rows: list[Any], params: dict[str, str]) -> httpx.Response:
    """Answer one page of `rows`, as every listing of the API does."""
    return ok(page_of(rows, params))


@dataclass(eq=False)
class Node:
    """An organization, secret group or environment."""

    kind: str
    id: str
    name: str
    parent: Node | None
    description: str | None = None

    @property
    def lineage(self) -> list[Node]:
        """Return this node and its ancestors, nearest first."""
        return [self, *(self.parent.lineage if self.parent else [])]

    @property
    def org(self) -> Node:
        return self.lineage[-1]


@dataclass(eq=False)
class Binding:
    node: Node
    role: str
    user_id: str | None = None
    user_group_id: str | None = None


@dataclass(eq=False)
class UserGroup:
    id: str
    org: Node
    name: str
    description: str | None = None
    members: dict[str, str] = field(default_factory=dict)  # user id -> added_at


@dataclass(eq=False)
class Token:
    id: str
    name: str
    role: str
    env: Node
    value: str
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass
class FakeIam:
    """The state behind the routes, plus helpers tests use to set it up."""

    nodes: dict[str, Node] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    user_groups: dict[str, UserGroup] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    # Invites of logins nobody has signed in with, and of addresses: (node, the invite's JSON).
    invites: list[tuple[Node, dict[str, Any]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- set-up helpers -------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def add(
        self, kind: str, name: str, parent: Node | None = None, *, role: str | None = "owner"
    ) -> Node:
        """Create a node; alice gets `role` on it (bob owns it when alice's role is lower)."""
        prefix = {"organization": "org", "secret_group": "grp", "environment": "env"}[kind]
        node = Node(kind, self._new_id(prefix), name, parent)
        self.nodes[node.id] = node
        if role is not None:
            self.bindings.append(Binding(node, role, user_id=CALLER))
        if role != "owner" and parent is None:
            self.bindings.append(Binding(node, "owner", user_id=USERS["bob"]["id"]))
        return node

    def org(self, name: str, *, role: str | None = "owner") -> Node:
        return self.add("organization", name, role=role)

    def group(self, org: Node, name: str, *, role: str | None = None) -> Node:
        return self.add("secret_group", name, org, role=role)

    def env(self, group: Node, name: str, *, role: str | None = None) -> Node:
        return self.add("environment", name, group, role=role)

    def user_group(self, org: Node, name: str, *members: str) -> UserGroup:
        group = UserGroup(self._new_id("ug"), org, name)
        group.members.update({USERS[login]["id"]: CREATED for login in members})
        self.user_groups[group.id] = group
        return group

    def token(self, env: Node, name: str, role: str = "viewer", *, revoked: bool = False) -> Token:
        now = datetime.now(UTC)
        token = Token(
            self._new_id("tok"),
            name,
            role,
            env,
            f"kvt_{secrets.token_urlsafe(24)}",
            now + timedelta(days=90),
            now if revoked else None,
        )
        self.tokens[token.id] = token
        return token

    # ---- rules ---------------------------------------------------------------------------

    def _applies(self, binding: Binding) -> bool:
        if binding.user_id is not None:
            return binding.user_id == CALLER
        group = self.user_groups.get(binding.user_group_id or "")
        return group is not None and CALLER in group.members

    def role_on(self, node: Node) -> str | None:
        """Return alice's effective role: the highest on the node or any ancestor."""
        lineage = node.lineage
        roles = [b.role for b in self.bindings if b.node in lineage and self._applies(b)]
        return max(roles, key=RANK.__getitem__) if roles else None

    def visible(self, node: Node) -> bool:
        if self.role_on(node) is not None:
            return True
        return any(child.parent is node and self.visible(child) for child in self.nodes.values())

    def need(self, node: Node, role: str, action: str) -> None:
        if not self.visible(node):
            raise Failure(404, "not_found", f"{node.kind} not found")
        held = self.role_on(node)
        if held is None or RANK[held] < RANK[role]:
            raise Failure(403, "forbidden", f"you may not {action} on this {node.kind}")

    def node(self, collection: str, ident: str) -> Node:
        node = self.nodes.get(ident)
        if node is None or node.kind != COLLECTIONS[collection] or not self.visible(node):
            raise Failure(404, "not_found", f"{COLLECTIONS[collection]} not found")
        return node

    # ---- shapes ----------------------------------------------------------------------------

    def node_json(self, node: Node) -> dict[str, Any]:
        data: dict[str, Any] = {"id": node.id}
        if node.kind == "secret_group":
            data["organization_id"] = node.org.id
        if node.kind == "environment":
            data["secret_group_id"] = node.parent.id if node.parent else None
            data["organization_id"] = node.org.id
        data.update(
            name=node.name,
            description=node.description,
            created_at=CREATED,
            role=self.role_on(node),
        )
        return data

    def binding_json(self, binding: Binding, seen_from: Node) -> dict[str, Any]:
        user = next((u for u in USERS.values() if u["id"] == binding.user_id), None)
        group = self.user_groups.get(binding.user_group_id or "")
        return {
            "subject_type": "user" if user else "user_group",
            "user": {"id": user["id"], "login": user["login"]} if user else None,
            "user_group": {"id": group.id, "name": group.name} if group else None,
            "role": binding.role,
            "resource_type": binding.node.kind,
            "resource_id": binding.node.id,
            "resource_name": binding.node.name,
            "inherited": binding.node is not seen_from,
        }

    def user_group_json(self, group: UserGroup) -> dict[str, Any]:
        return {
            "id": group.id,
            "organization_id": group.org.id,
            "name": group.name,
            "description": group.description,
            "created_at": CREATED,
        }

    @staticmethod
    def token_json(token: Token) -> dict[str, Any]:
        return {
            "id": token.id,
            "name": token.name,
            "role": token.role,
            "environment_id": token.env.id,
            "created_at": CREATED,
            "expires_at": token.expires_at.isoformat(),
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
            "last_used_at": None,
            "workload_trust_id": None,
            "subject": None,
        }

    # ---- operations the routes share ---------------------------------------------------------

    def check_name(self, body: dict[str, Any]) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise Failure(422, "validation_failed", f"invalid name {name!r}")
        return name

    def create_node(self, kind: str, body: dict[str, Any], parent: Node | None) -> Node:
        name = self.check_name(body)
        siblings = [n for n in self.nodes.values() if n.kind == kind and n.parent is parent]
        if any(n.name == name for n in siblings):
            raise Failure(409, "already_exists", f"{kind} {name!r} already exists")
        node = self.add(kind, name, parent)
        node.description = body.get("description")
        return node

    def delete_node(self, node: Node, cascade: bool) -> None:
        children = [n for n in self.nodes.values() if n.parent is node]
        if children and not cascade:
            noun = "secret group" if node.kind == "organization" else "environment"
            message = f"{node.kind} {node.name!r} has {len(children)} {noun}(s); "
            raise Failure(409, "has_children", message + "delete them first or pass cascade=true")
        for child in children:
            self.delete_node(child, cascade)
        del self.nodes[node.id]
        self.bindings = [b for b in self.bindings if b.node is not node]
        self.tokens = {k: t for k, t in self.tokens.items() if t.env is not node}
        self.user_groups = {k: g for k, g in self.user_groups.items() if g.org is not node}

    def find_user_group(self, org: Node, name_or_id: Any) -> UserGroup:
        for group in self.user_groups.values():
            if group.org is org and name_or_id in (group.id, group.name):
                return group
        raise Failure(404, "not_found", "user group not found")

    @staticmethod
    def find_user(login: Any) -> dict[str, Any]:
        if login not in USERS:
            raise Failure(404, "not_found", f"no user {login!r}")
        return USERS[login]
