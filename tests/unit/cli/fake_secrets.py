"""An in-memory fake of the secrets API and /auth/whoami, following the API contract.

Versions per environment with 8-character ids and a sequence number, commits as set/unset
or a replacing snapshot with optimistic concurrency (409 version_conflict with the names
changed since parent_version), versions pages, diff, rollback and per-name history.
Callers are alice (role from FakeIam) or a service token (only its environment; viewer
reads, editor writes), as on the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .fake_iam import USERS, Failure, FakeIam, Node, Token, ok, paged

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")
SECRETS_PATH = re.compile(r"^/environments/([^/]+)/secrets(/.*)?$")
USER = USERS["alice"]


@dataclass
class Version:
    id: str
    seq: int
    parent_id: str | None
    message: str
    author: dict[str, Any]
    values: dict[str, str]
    rollback_of: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "parent_id": self.parent_id,
            "message": self.message,
            "author": self.author,
            "secret_count": len(self.values),
            "created_at": f"2025-03-{self.seq:02d}T10:00:00Z",
            "rollback_of": self.rollback_of,
        }


@dataclass
class FakeSecrets:
    """Versions per environment id, plus hooks tests use to interleave other writers."""

    iam: FakeIam
    versions: dict[str, list[Version]] = field(default_factory=dict)
    # Called just before a commit is applied: lets a test commit "concurrently".
    before_commit: Callable[[], object] | None = None
    _count: int = 0

    def commit(
        self,
        env: Node,
        values: dict[str, str],
        message: str = "set up",
        *,
        author: dict[str, Any] | None = None,
        rollback_of: str | None = None,
    ) -> Version:
        """Append a version holding exactly `values` (for set-up and for the routes)."""
        self._count += 1
        history = self.versions.setdefault(env.id, [])
        latest = history[-1] if history else None
        version = Version(
            id=f"vers{self._count:04d}",
            seq=len(history) + 1,
            parent_id=latest.id if latest else None,
            message=message,
            author=author or {"type": "user", "id": USER["id"], "label": "alice"},
            values=dict(sorted(values.items())),
            rollback_of=rollback_of,
        )
        history.append(version)
        return version

    def latest(self, env: Node) -> Version | None:
        history = self.versions.get(env.id) or []
        return history[-1] if history else None

    def find(self, env: Node, version_id: str) -> Version:
        for version in self.versions.get(env.id) or []:
            if version.id == version_id:
                return version
        raise Failure(404, "not_found", "version not found")


def owns(path: str) -> bool:
    """Tell whether `path` (after /api/v1) is a secrets route."""
    return SECRETS_PATH.match(path) is not None or path == "/auth/whoami"


def token_for(iam: FakeIam, authorization: str | None) -> Token | None:
    """Return the live service token the Authorization header carries, if any."""
    value = (authorization or "").removeprefix("Bearer ")
    for token in iam.tokens.values():
        if token.value == value and token.revoked_at is None:
            return token
    return None


def whoami(token: Token | None) -> httpx.Response:
    if token is None:
        return ok({"type": "user", "user": USER, "token": None})
    return ok({"type": "service_token", "user": None, "token": FakeIam.token_json(token)})


def handle(
    secrets: FakeSecrets,
    token: Token | None,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
) -> httpx.Response:
    """Answer one authenticated request (alice, or `token`) for a secrets route."""
    if path == "/auth/whoami":
        return whoami(token)
    try:
        match = SECRETS_PATH.match(path)
        assert match is not None
        env = _environment(secrets.iam, token, match.group(1), write=method == "POST")
        return _route(secrets, env, token, method, match.group(2) or "", params, body)
    except Failure as failure:
        return httpx.Response(
            failure.status,
            json={
                "success": False,
                "data": getattr(failure, "data", None),
                "error": failure.message,
                "error_code": failure.code,
            },
        )


class Conflict(Failure):
    def __init__(self, message: str, data: dict[str, Any]) -> None:
        super().__init__(409, "version_conflict", message)
        self.data = data


def _environment(iam: FakeIam, token: Token | None, env_id: str, *, write: bool) -> Node:
    if token is not None:
        if token.env.id != env_id:
            raise Failure(404, "not_found", "environment not found")
        if write and token.role != "editor":
            raise Failure(403, "forbidden", "this service token may not secret.write")
        return token.env
    env = iam.node("environments", env_id)
    iam.need(env, "editor" if write else "viewer", "secret.write" if write else "secret.read")
    return env


def _author(token: Token | None) -> dict[str, Any]:
    if token is None:
        return {"type": "user", "id": USER["id"], "label": "alice"}
    return {"type": "service_token", "id": token.id, "label": token.name}


def _changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def _route(
    secrets: FakeSecrets,
    env: Node,
    token: Token | None,
    method: str,
    rest: str,
    params: dict[str, str],
    body: Any,
) -> httpx.Response:
    latest = secrets.latest(env)
    if (method, rest) == ("GET", ""):
        wanted = secrets.find(env, params["version"]) if "version" in params else latest
        return ok(
            {
                "version": wanted.summary() if wanted else None,
                "secrets": dict(wanted.values) if wanted else {},
            }
        )
    if (method, rest) == ("POST", "/versions"):
        return _commit(secrets, env, token, body if isinstance(body, dict) else {})
    if (method, rest) == ("GET", "/versions"):
        history = list(reversed(secrets.versions.get(env.id) or []))
        return paged([v.summary() for v in history], params)
    if method == "GET" and rest.startswith("/versions/"):
        found = secrets.find(env, rest.removeprefix("/versions/"))
        return ok({**found.summary(), "secrets": dict(found.values)})
    if (method, rest) == ("GET", "/diff"):
        return _diff(secrets, env, params)
    if (method, rest) == ("POST", "/rollback"):
        target = secrets.find(env, str(body.get("version_id")))
        created = secrets.commit(
            env,
            target.values,
            str(body.get("commit_message")),
            author=_author(token),
            rollback_of=target.id,
        )
        return ok(created.summary(), 201)
    if method == "GET" and rest.endswith("/history"):
        return _history(secrets, env, rest.removeprefix("/").removesuffix("/history"), params)
    raise Failure(404, "not_found", f"no route {method} {rest}")


def _commit(
    secrets: FakeSecrets, env: Node, token: Token | None, body: dict[str, Any]
) -> httpx.Response:
    if secrets.before_commit is not None:
        hook, secrets.before_commit = secrets.before_commit, None
        hook()
    latest = secrets.latest(env)
    names = [*body.get("set", {}), *body.get("unset", []), *(body.get("secrets") or {})]
    if not all(isinstance(name, str) and NAME.match(name) for name in names):
        raise Failure(422, "validation_failed", "invalid secret name")
    parent = body.get("parent_version")
    if parent is not None and (latest is None or latest.id != parent):
        base = secrets.find(env, parent)
        raise Conflict(
            f"the environment moved on from {parent}",
            {
                "latest_version": latest.summary() if latest else None,
                "changed": _changed(base.values, latest.values if latest else {}),
            },
        )
    current = dict(latest.values) if latest else {}
    if body.get("replace"):
        values = dict(body["secrets"])
    else:
        missing = sorted(set(body.get("unset", [])) - current.keys())
        if missing:
            raise Failure(422, "validation_failed", f"cannot unset what is not set: {missing}")
        values = {**current, **body.get("set", {})}
        for name in body.get("unset", []):
            del values[name]
    if latest is not None and values == current:
        raise Failure(422, "no_changes", "nothing changed")
    created = secrets.commit(env, values, str(body.get("message")), author=_author(token))
    return ok(created.summary(), 201)


def _diff(secrets: FakeSecrets, env: Node, params: dict[str, str]) -> httpx.Response:
    to = secrets.find(env, params["to"]) if "to" in params else secrets.latest(env)
    if to is None:
        raise Failure(422, "validation_failed", "this environment has no versions yet")
    from_id = params.get("from", to.parent_id)
    old_version = secrets.find(env, from_id) if from_id else None
    old = old_version.values if old_version else {}
    new = to.values
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    modified = sorted(n for n in old.keys() & new.keys() if old[n] != new[n])
    values: dict[str, Any] | None = None
    if params.get("reveal") == "true":
        values = {n: new[n] for n in added}
        values.update({n: old[n] for n in removed})
        values.update({n: {"old": old[n], "new": new[n]} for n in modified})
    return ok(
        {
            "from_version": old_version.summary() if old_version else None,
            "to_version": to.summary(),
            "added": added,
            "removed": removed,
            "modified": modified,
            "unchanged": len(old.keys() & new.keys()) - len(modified),
            "values": values,
        }
    )


def _history(secrets: FakeSecrets, env: Node, name: str, params: dict[str, str]) -> httpx.Response:
    entries = []
    previous: str | None = None
    for version in secrets.versions.get(env.id) or []:
        value = version.values.get(name)
        if value == previous:
            continue
        change = "added" if previous is None else "removed" if value is None else "modified"
        shown = value if params.get("reveal") == "true" else None
        entries.append({"version": version.summary(), "change": change, "value": shown})
        previous = value
    if not entries:
        raise Failure(404, "not_found", f"{name} was never set in this environment")
    return ok(list(reversed(entries)))
