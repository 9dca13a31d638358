"""An in-memory fake of the providers and sync API, following the API contract.

Provider configurations per environment (credentials kept for tests to read, never
answered), true partial updates with the "credentials again" rule, a test endpoint, and a
sync engine over an in-memory target per provider: a ledger of what Kavach wrote, plans with
create/update/unchanged/delete/unmanaged, prune and adopt, scripted failures per remote name,
409 sync_in_progress and recorded runs. Callers are alice (role from FakeIam) or a service
token (viewer reads, editor syncs), as on the server.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from .fake_iam import Failure, FakeIam, Node, Token, ok, paged
from .fake_secrets import FakeSecrets

PROVIDERS_PATH = re.compile(r"^/environments/([^/]+)/providers/(?:([^/]+)(/test)?)?$")
SYNC_PATH = re.compile(r"^/environments/([^/]+)/secrets/sync$")
RUNS_PATH = re.compile(r"^/environments/([^/]+)/sync-runs(?:/([^/]+))?$")
CREDENTIAL_FIELDS = {
    "github": ["token"],
    "gcp": ["client_email", "private_key", "project_id", "type"],
    "azure": ["client_id", "client_secret", "tenant_id"],
}
BOUND = {
    "github": {"api_url"},
    "gcp": {"api_endpoint", "project_id"},
    "azure": {"vault_url", "authority_host"},
}
ADOPT_HINT = "exists on the target but was not written by Kavach; sync with adopt to take it over"
STAMP = "2025-04-01T10:00:00Z"


def remote_name(provider: str, name: str) -> str:
    """Map a Kavach name as each target does."""
    if provider == "github":
        return re.sub(r"[^A-Z0-9_]", "_", name.upper())
    if provider == "azure":
        return name.replace("_", "-").replace(".", "-").lower()
    return name.replace(".", "_")


def target_key(provider: str, config: dict[str, Any]) -> str:
    if provider == "github":
        return f"github:{config.get('owner')}/{config.get('repository')}"
    if provider == "gcp":
        return f"gcp:{config.get('project_id')}"
    return f"azure:{config.get('vault_url')}"


@dataclass
class FakeProvider:
    provider: str
    config: dict[str, Any]
    credentials: dict[str, Any]
    updated: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "config": dict(self.config),
            "credential_fields": CREDENTIAL_FIELDS.get(self.provider, sorted(self.credentials)),
            "created_at": STAMP,
            "updated_at": f"2025-04-{1 + self.updated:02d}T10:00:00Z",
        }


@dataclass
class FakeTarget:
    """A remote target: its secrets, Kavach's ledger, scripted failures and attempt counts."""

    remote: dict[str, str] = field(default_factory=dict)
    ledger: dict[str, tuple[str, str]] = field(default_factory=dict)  # remote -> (name, value)
    failures: dict[str, str] = field(default_factory=dict)  # remote name -> error
    attempts: dict[str, int] = field(default_factory=dict)  # remote name -> attempts used
    writes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class FakeSync:
    iam: FakeIam
    secrets: FakeSecrets
    providers: dict[str, dict[str, FakeProvider]] = field(default_factory=dict)
    targets: dict[tuple[str, str], FakeTarget] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)  # providers whose target is being synced
    test_error: str | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def configure(
        self, env: Node, provider: str, config: dict[str, Any], credentials: dict[str, Any]
    ) -> FakeProvider:
        """Configure a provider directly (test set-up)."""
        made = FakeProvider(provider, dict(config), dict(credentials))
        self.providers.setdefault(env.id, {})[provider] = made
        return made

    def target(self, env: Node, provider: str) -> FakeTarget:
        return self.targets.setdefault((env.id, provider), FakeTarget())

    def new_run_id(self) -> str:
        n = next(self._ids)
        return f"{n:04x}{n:04x}-aaaa-4bbb-8ccc-{n:012x}"


def owns(path: str) -> bool:
    """Tell whether `path` (after /api/v1) belongs to these routes."""
    return any(p.match(path) for p in (PROVIDERS_PATH, SYNC_PATH, RUNS_PATH))


def handle(
    sync: FakeSync,
    token: Token | None,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
) -> httpx.Response:
    """Answer one authenticated request (alice, or `token`)."""
    try:
        return _route(sync, token, method, path, params, body if isinstance(body, dict) else {})
    except Failure as failure:
        return httpx.Response(
            failure.status,
            json={
                "success": False,
                "data": None,
                "error": failure.message,
                "error_code": failure.code,
            },
        )


def _env(sync: FakeSync, token: Token | None, env_id: str, role: str, action: str) -> Node:
    if token is not None:
        if token.env.id != env_id:
            raise Failure(404, "not_found", "environment not found")
        if role not in ("viewer", token.role):
            raise Failure(403, "forbidden", f"this service token may not {action}")
        return token.env
    env = sync.iam.node("environments", env_id)
    sync.iam.need(env, role, action)
    return env


def _route(
    sync: FakeSync,
    token: Token | None,
    method: str,
    path: str,
    params: dict[str, str],
    body: dict[str, Any],
) -> httpx.Response:
    if match := SYNC_PATH.match(path):
        if method != "POST":
            raise Failure(405, "method_not_allowed", "method not allowed")
        env = _env(sync, token, match.group(1), "editor", "sync.run")
        return ok(_sync(sync, env, body))
    if match := RUNS_PATH.match(path):
        env = _env(sync, token, match.group(1), "viewer", "provider.read")
        runs = sync.runs.get(env.id, [])
        if match.group(2) is None:
            newest = [{k: v for k, v in r.items() if k != "items"} for r in reversed(runs)]
            return paged(newest, params)
        for run in runs:
            if run["id"] == match.group(2):
                return ok(run)
        raise Failure(404, "not_found", "sync run not found in this environment")
    match = PROVIDERS_PATH.match(path)
    assert match is not None
    env_id, name, test = match.groups()
    manage = method != "GET"
    env = _env(
        sync,
        token,
        env_id,
        "admin" if manage else "viewer",
        "provider.manage" if manage else "provider.read",
    )
    configured = sync.providers.setdefault(env.id, {})
    if name is None:
        if method == "GET":
            return paged([configured[p].public() for p in sorted(configured)], params)
        return _create(sync, env, configured, body)
    found = configured.get(name)
    if found is None:
        raise Failure(404, "not_found", f"provider {name!r} is not configured for this environment")
    if test:
        if sync.test_error is not None:
            raise Failure(502, "provider_error", sync.test_error)
        return ok({"ok": True, "target": target_key(name, found.config)})
    if method == "GET":
        return ok(found.public())
    if method == "DELETE":
        del configured[name]
        return ok({"removed": True})
    return _update(found, body)


def _create(
    sync: FakeSync, env: Node, configured: dict[str, FakeProvider], body: dict[str, Any]
) -> httpx.Response:
    if set(body) - {"provider", "config", "credentials"}:
        raise Failure(422, "validation_failed", "unknown fields")
    name = body.get("provider")
    if name not in CREDENTIAL_FIELDS:
        raise Failure(422, "validation_failed", f"unknown provider {name!r}")
    if name in configured:
        raise Failure(409, "already_exists", f"{name} is already configured here; update it")
    made = sync.configure(env, str(name), body.get("config", {}), body.get("credentials", {}))
    return ok(made.public(), 201)


def _update(found: FakeProvider, body: dict[str, Any]) -> httpx.Response:
    if set(body) - {"config", "credentials"}:
        raise Failure(422, "validation_failed", "unknown fields")
    config = body.get("config") or {}
    credentials = body.get("credentials") or {}
    moved = sorted(
        k for k in BOUND[found.provider] if k in config and config[k] != found.config.get(k)
    )
    if moved and not credentials:
        raise Failure(
            422,
            "validation_failed",
            f"changing {', '.join(moved)} redirects the stored credentials; send the "
            "credentials again in the same update",
        )
    found.config.update(config)
    found.credentials.update(credentials)
    found.updated += 1
    return ok(found.public())


def _plan(
    provider: str, values: dict[str, str], state: FakeTarget, prune: bool, adopt: bool
) -> list[dict[str, Any]]:
    items = []
    wanted = set()
    for name in sorted(values):
        remote = remote_name(provider, name)
        wanted.add(remote)
        note = None
        if remote in state.ledger:
            same = state.ledger[remote][1] == values[name] and remote in state.remote
            action = "unchanged" if same else "update"
        elif remote in state.remote and not adopt:
            action, note = "unmanaged", ADOPT_HINT
        elif remote in state.remote:
            action, note = "update", "adopting an existing secret"
        else:
            action = "create"
        items.append({"name": name, "remote_name": remote, "action": action, "note": note})
    if prune:
        for remote, (name, _value) in sorted(state.ledger.items()):
            if remote not in wanted:
                items.append(
                    {"name": name, "remote_name": remote, "action": "delete", "note": None}
                )
    return items


def _sync(sync: FakeSync, env: Node, body: dict[str, Any]) -> dict[str, Any]:
    if set(body) - {"provider", "version_id", "dry_run", "prune", "adopt"}:
        raise Failure(422, "validation_failed", "unknown fields")
    provider = str(body.get("provider"))
    found = sync.providers.get(env.id, {}).get(provider)
    if found is None:
        raise Failure(
            404, "not_found", f"provider {provider!r} is not configured for this environment"
        )
    version = (
        sync.secrets.find(env, body["version_id"])
        if body.get("version_id")
        else sync.secrets.latest(env)
    )
    if version is None:
        raise Failure(422, "validation_failed", "nothing to sync: no versions yet")
    if provider in sync.busy:
        raise Failure(409, "sync_in_progress", "another sync of the target is running")
    state = sync.target(env, provider)
    dry_run = bool(body.get("dry_run"))
    items = _plan(provider, version.values, state, bool(body.get("prune")), bool(body.get("adopt")))
    counts: dict[str, int] = dict(Counter(item["action"] for item in items))
    for item in items:
        item.update(attempts=0, error=None)
        if item["action"] in ("unchanged", "unmanaged"):
            item["status"] = "unchanged" if item["action"] == "unchanged" else "refused"
        elif dry_run:
            item["status"] = "planned"
        else:
            _write(state, item, version.values)
    outcomes = Counter(item["status"] for item in items)
    if dry_run:
        status = "planned"
    elif outcomes["failed"] + outcomes["refused"] == 0:
        status = "succeeded"
    else:
        status = "partial" if outcomes["succeeded"] + outcomes["unchanged"] else "failed"
    if not dry_run:
        counts.update(succeeded=outcomes["succeeded"], failed=outcomes["failed"])
    run = {
        "id": sync.new_run_id(),
        "provider": provider,
        "target": target_key(provider, found.config),
        "version_id": version.id,
        "status": status,
        "dry_run": dry_run,
        "prune": bool(body.get("prune")),
        "adopt": bool(body.get("adopt")),
        "counts": counts,
        "actor": {"type": "user", "id": "u-1", "label": "alice"},
        "error": None,
        "created_at": STAMP,
        "finished_at": None if dry_run else STAMP,
        "items": sorted(items, key=lambda item: item["name"]),
    }
    sync.runs.setdefault(env.id, []).append(run)
    return run


def _write(state: FakeTarget, item: dict[str, Any], values: dict[str, str]) -> None:
    remote = item["remote_name"]
    item["attempts"] = state.attempts.get(remote, 1)
    if remote in state.failures:
        item.update(status="failed", error=state.failures[remote])
        return
    if item["action"] == "delete":
        state.remote.pop(remote, None)
        state.ledger.pop(remote, None)
    else:
        value = values[item["name"]]
        state.remote[remote] = value
        state.ledger[remote] = (item["name"], value)
    state.writes.append((item["action"], remote))
    item["status"] = "succeeded"
