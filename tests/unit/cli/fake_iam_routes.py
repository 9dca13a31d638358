"""The routes of FakeIam: paths exactly as the API description writes them (slashes included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .fake_iam import (
    CHILDREN,
    COLLECTIONS,
    CREATED,
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    RANK,
    USERS,
    Binding,
    Failure,
    FakeIam,
    Node,
    UserGroup,
    ok,
    paged,
)

Body = dict[str, Any]


def owns(path: str) -> bool:
    """Tell whether `path` (after /api/v1) belongs to these routes."""
    first = path.strip("/").split("/")[0]
    return first in COLLECTIONS or first == "user-groups"


def handle(
    iam: FakeIam, method: str, path: str, params: dict[str, str], body: Any
) -> httpx.Response:
    """Answer one authenticated request for `path` (after /api/v1)."""
    try:
        return _route(iam, method, path, params, body if isinstance(body, dict) else {})
    except Failure as failure:
        envelope = {
            "success": False,
            "data": None,
            "error": failure.message,
            "error_code": failure.code,
        }
        return httpx.Response(failure.status, json=envelope)


def _no_route(method: str, path: str) -> Failure:
    return Failure(404, "not_found", f"no route {method} {path}")


def _route(
    iam: FakeIam, method: str, path: str, params: dict[str, str], body: Body
) -> httpx.Response:
    head, *rest = path.split("/")[1:]
    if head == "user-groups":
        return _user_groups(iam, method, path, rest, params, body)
    if head == "organizations" and rest == [""]:
        if method == "GET":
            orgs = [n for n in iam.nodes.values() if n.parent is None and iam.visible(n)]
            return paged([iam.node_json(n) for n in orgs], params)
        if method == "POST":
            return ok(iam.node_json(iam.create_node("organization", body, None)), 201)
    if head == "organizations" and rest[:1] == ["by-name"] and method == "GET":
        return ok(iam.node_json(_by_names(iam, rest[1:])))
    if head not in COLLECTIONS or not rest or not rest[0]:
        raise _no_route(method, path)
    node = iam.node(head, rest[0])
    if len(rest) == 1:
        return _node(iam, method, node, params, body)
    if len(rest) == 2 and rest[1] == CHILDREN.get(node.kind):
        return _children(iam, method, node, params, body)
    if len(rest) == 2 and rest[1] == "members":
        return _members(iam, method, node, params, body)
    if rest[1:] == ["members", "pending"]:
        return _pending(iam, method, node, params, body)
    if rest[1] == "tokens" and node.kind == "environment" and len(rest) in (2, 3):
        return _tokens(iam, method, node, rest[2:], params, body)
    raise _no_route(method, path)


def _by_names(iam: FakeIam, rest: list[str]) -> Node:
    """Find the node `NAME[/secret-groups/GROUP[/environments/ENV]]` leads to, if visible."""
    names, collections = rest[0::2], rest[1::2]
    kinds = ["organization", "secret_group", "environment"][: len(names)]
    if not names or collections != ["secret-groups", "environments"][: len(collections)]:
        raise _no_route("GET", "/organizations/by-name/" + "/".join(rest))
    parent: Node | None = None
    for name in names:
        found = [n for n in iam.nodes.values() if n.parent is parent and n.name == name]
        if not found:
            break
        parent = found[0]
    else:
        if parent is not None and iam.visible(parent):
            return parent
    raise Failure(404, "not_found", f"{kinds[-1].replace('_', ' ')} not found")


def _node(
    iam: FakeIam, method: str, node: Node, params: dict[str, str], body: Body
) -> httpx.Response:
    if method == "GET":
        return ok(iam.node_json(node))
    if method == "PATCH":
        iam.need(node, "admin", f"{node.kind}.update")
        node.name = iam.check_name(body) if "name" in body else node.name
        node.description = body.get("description", node.description)
        return ok(iam.node_json(node))
    if method == "DELETE":
        iam.need(node, "owner", f"{node.kind}.delete")
        iam.delete_node(node, params.get("cascade") == "true")
        return ok({"id": node.id, "deleted": True})
    raise _no_route(method, node.id)


def _children(
    iam: FakeIam, method: str, parent: Node, params: dict[str, str], body: Body
) -> httpx.Response:
    kind = "secret_group" if parent.kind == "organization" else "environment"
    if method == "GET":
        rows = [
            n
            for n in iam.nodes.values()
            if n.parent is parent and iam.visible(n) and params.get("name", n.name) == n.name
        ]
        return paged([iam.node_json(n) for n in rows], params)
    if method == "POST":
        iam.need(parent, "admin", f"{kind}.create")
        return ok(iam.node_json(iam.create_node(kind, body, parent)), 201)
    raise _no_route(method, parent.id)


def _subject(iam: FakeIam, node: Node, body: Body) -> Binding:
    """Return a binding (without role) for the {user} or {user_group} in `body`."""
    if ("user" in body) == ("user_group" in body):
        raise Failure(422, "validation_failed", "give exactly one of user and user_group")
    if "user" in body:
        return Binding(node, "", user_id=iam.find_user(body["user"])["id"])
    return Binding(node, "", user_group_id=iam.find_user_group(node.org, body["user_group"]).id)


def _same_subject(a: Binding, b: Binding) -> bool:
    return (a.node, a.user_id, a.user_group_id) == (b.node, b.user_id, b.user_group_id)


def _members(
    iam: FakeIam, method: str, node: Node, params: dict[str, str], body: Body
) -> httpx.Response:
    if method == "GET":
        iam.need(node, "admin", "members.read")
        lineage = node.lineage
        found = [b for b in iam.bindings if b.node in lineage]
        return paged([iam.binding_json(b, node) for b in found], params)
    iam.need(node, "admin", "members.grant")
    if method == "POST" and (body.get("email") or body.get("user") not in (None, *USERS)):
        return _invite(iam, node, body)
    wanted = _subject(iam, node, body)
    existing = next((b for b in iam.bindings if _same_subject(b, wanted)), None)
    if method == "POST":
        role = body.get("role")
        if role not in RANK:
            raise Failure(422, "validation_failed", f"invalid role {role!r}")
        if role == "owner" or (existing is not None and existing.role == "owner"):
            iam.need(node, "owner", "members.grant_owner")
        binding = existing or wanted
        binding.role = role
        if existing is None:
            iam.bindings.append(binding)
        return ok(iam.binding_json(binding, node))
    if method == "DELETE":
        if existing is None:
            raise Failure(404, "not_found", "no such binding")
        owners = [b for b in iam.bindings if b.node is node and b.role == "owner"]
        if existing.role == "owner" and node.parent is None and len(owners) == 1:
            raise Failure(409, "last_owner", "an organization keeps at least one owner")
        iam.bindings.remove(existing)
        return ok({"removed": True})
    raise _no_route(method, node.id)


def _invite(iam: FakeIam, node: Node, body: Body) -> httpx.Response:
    """Invite a login nobody has signed in with, or an address: 202 and the pending grant."""
    if body.get("role") == "owner":
        iam.need(node, "owner", "members.grant_owner")
    login, email = body.get("user"), body.get("email")
    invite = {
        "id": iam._new_id("inv"),
        "pending": True,
        "login": login.lower() if login else None,
        "email": email.lower() if email else None,
        "role": body.get("role"),
        "resource_type": node.kind,
        "resource_id": node.id,
        "resource_name": node.name,
        "granted_by": {"id": USERS["alice"]["id"], "login": "alice"},
        "created_at": CREATED,
    }
    iam.invites = [
        (n, i)
        for n, i in iam.invites
        if (n, i["login"], i["email"]) != (node, invite["login"], invite["email"])
    ]
    iam.invites.append((node, invite))
    return ok(invite, 202)


def _pending(
    iam: FakeIam, method: str, node: Node, params: dict[str, str], body: Body
) -> httpx.Response:
    if method == "GET":
        iam.need(node, "admin", "members.read")
        return paged([invite for n, invite in iam.invites if n is node], params)
    if method == "DELETE":
        iam.need(node, "admin", "members.grant")
        wanted = (node, (body.get("user") or "").lower() or None, body.get("email"))
        for found in iam.invites:
            if (found[0], found[1]["login"], found[1]["email"]) == wanted:
                iam.invites.remove(found)
                return ok({"removed": True})
        raise Failure(404, "not_found", "no such invite is pending on this resource")
    raise _no_route(method, node.id)


def _user_group(iam: FakeIam, ident: str) -> UserGroup:
    group = iam.user_groups.get(ident)
    if group is None or not iam.visible(group.org):
        raise Failure(404, "not_found", "user group not found")
    return group


def _user_groups(
    iam: FakeIam, method: str, path: str, rest: list[str], params: dict[str, str], body: Body
) -> httpx.Response:
    if rest == [""]:
        org_id = params.get("organization_id") if method == "GET" else body.get("organization_id")
        org = iam.node("organizations", str(org_id))
        if method == "GET":
            iam.need(org, "viewer", "user_group.read")
            rows = [
                g
                for g in iam.user_groups.values()
                if g.org is org and params.get("name", g.name) == g.name
            ]
            return paged([iam.user_group_json(g) for g in rows], params)
        if method == "POST":
            iam.need(org, "admin", "user_group.create")
            name = iam.check_name(body)
            if any(g.org is org and g.name == name for g in iam.user_groups.values()):
                raise Failure(409, "already_exists", f"user group {name!r} already exists")
            group = iam.user_group(org, name)
            group.description = body.get("description")
            return ok(iam.user_group_json(group), 201)
    if len(rest) == 1 and rest[0]:
        group = _user_group(iam, rest[0])
        if method == "GET":
            return ok(iam.user_group_json(group))
        if method == "DELETE":
            iam.need(group.org, "owner", "user_group.delete")
            del iam.user_groups[group.id]
            iam.bindings = [b for b in iam.bindings if b.user_group_id != group.id]
            return ok({"id": group.id, "deleted": True})
    if len(rest) == 2 and rest[1] == "members":
        return _group_members(iam, method, _user_group(iam, rest[0]), params, body)
    raise _no_route(method, path)


def _group_members(
    iam: FakeIam, method: str, group: UserGroup, params: dict[str, str], body: Body
) -> httpx.Response:
    if method == "GET":
        iam.need(group.org, "viewer", "user_group.read")
        users = [u for u in USERS.values() if u["id"] in group.members]
        return paged([_member_json(u, group) for u in users], params)
    iam.need(group.org, "admin", "user_group.members")
    user = iam.find_user(body.get("user"))
    if method == "POST":
        group.members.setdefault(user["id"], "2025-02-03T04:05:06Z")
        return ok(_member_json(user, group), 201)
    if method == "DELETE":
        if user["id"] not in group.members:
            raise Failure(404, "not_found", "not a member")
        del group.members[user["id"]]
        return ok({"removed": True})
    raise _no_route(method, group.id)


def _member_json(user: dict[str, Any], group: UserGroup) -> dict[str, Any]:
    return {
        "user_id": user["id"],
        "login": user["login"],
        "name": user["name"],
        "added_at": group.members[user["id"]],
    }


def _tokens(
    iam: FakeIam, method: str, env: Node, rest: list[str], params: dict[str, str], body: Body
) -> httpx.Response:
    if not rest and method == "GET":
        iam.need(env, "admin", "token.read")
        rows = [
            t for t in iam.tokens.values() if t.env is env and params.get("name", t.name) == t.name
        ]
        return paged([iam.token_json(t) for t in rows], params)
    if not rest and method == "POST":
        iam.need(env, "admin", "token.create")
        name = iam.check_name(body)
        if body.get("role") not in ("viewer", "editor"):
            raise Failure(422, "validation_failed", "a service token is viewer or editor")
        lifetime = body.get("expires_in", DEFAULT_TOKEN_LIFETIME)
        if not isinstance(lifetime, int) or not 0 < lifetime <= MAX_TOKEN_LIFETIME:
            raise Failure(422, "validation_failed", "expires_in must be 1 s to 1 year")
        live = [t for t in iam.tokens.values() if t.env is env and t.revoked_at is None]
        if any(t.name == name for t in live):
            raise Failure(409, "already_exists", f"token {name!r} already exists")
        token = iam.token(env, name, body["role"])
        token.expires_at = datetime.now(UTC) + timedelta(seconds=lifetime)
        return ok({**iam.token_json(token), "token": token.value}, 201)
    if len(rest) == 1 and method == "DELETE":
        iam.need(env, "admin", "token.revoke")
        revoked = iam.tokens.get(rest[0])
        if revoked is None or revoked.env is not env:
            raise Failure(404, "not_found", "token not found")
        revoked.revoked_at = revoked.revoked_at or datetime.now(UTC)
        return ok(iam.token_json(revoked))
    raise _no_route(method, env.id)
