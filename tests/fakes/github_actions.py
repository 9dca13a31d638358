"""A fake GitHub Actions secrets API, checked against GitHub's own OpenAPI description.

It serves the repository and environment secret endpoints of
`shared/specs/github-actions-secrets.openapi.json` under `state.api_prefix` (`""` for
api.github.com, `"/api/v3"` for GitHub Enterprise Server). Every repository and environment has
a real X25519 key pair; uploaded sealed boxes are opened with the private key, so tests read
the real plaintext back with `state.plaintext(...)`. Every request must match a documented
path, method and query parameters, every JSON body must validate against the request schema
and every answer against the response schema; what does not is kept in `state.violations`.

Script it through `FakeActionsState`: `add_repo`, `seed`, `fail` (a status, optionally slow,
for a path, method or secret name, N times), `slow`, `tokens` (token -> "write" or "read").
In process: `httpx.ASGITransport(app=create_fake_github_actions(state))`; as a real server on a
free loopback port: `with serve_fake_github_actions(state) as url: ...` (the API URL is
`url + state.api_prefix`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jsonschema  # type: ignore[import-untyped, unused-ignore]
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.github import _openapi_to_jsonschema, load_spec, response_validator
from tests.fakes.serving import serve_in_thread

REST_DOCS = "https://docs.github.com/rest/actions/secrets"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
MAX_VALUE_BYTES = 48 * 1024
_VALID_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# The spec paths this fake serves; the organization ones are out of Kavach's scope.
REPO_PATHS = (
    "/repos/{owner}/{repo}/actions/secrets",
    "/repos/{owner}/{repo}/actions/secrets/public-key",
    "/repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
)
Access = Literal["write", "read"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoredSecret:
    """One secret as GitHub keeps it (sealed), plus the plaintext the fake opened."""

    encrypted_value: str
    plaintext: str
    created_at: str
    updated_at: str


@dataclass
class SecretStore:
    """A repository's or an environment's secrets and its key pair."""

    key_id: str
    private_key: PrivateKey = field(default_factory=PrivateKey.generate)
    secrets: dict[str, StoredSecret] = field(default_factory=dict)

    @property
    def public_key(self) -> str:
        """Return the base64 public key, as GitHub hands it out."""
        return base64.b64encode(bytes(self.private_key.public_key)).decode()

    def seal(self, value: str) -> str:
        """Seal a value to this store's key, as a client would."""
        return base64.b64encode(
            SealedBox(self.private_key.public_key).encrypt(value.encode())
        ).decode()


@dataclass
class FakeRepo:
    """A repository: its own secrets and its environments' (by lowercase name)."""

    store: SecretStore
    environments: dict[str, SecretStore] = field(default_factory=dict)


@dataclass
class Fault:
    """A scripted answer: `status` (None answers normally) after `delay` seconds, `times` times."""

    status: int | None
    times: int
    path: str | None = None  # API path without prefix, e.g. /repos/o/r/actions/secrets
    method: str | None = None
    secret: str | None = None  # the secret_name path parameter
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Scripted failure"
    delay: float = 0.0

    def matches(self, method: str, path: str, secret: str | None) -> bool:
        """Tell whether this fault applies to a request."""
        return (
            self.times > 0
            and self.path in (None, path)
            and self.method in (None, method)
            and (self.secret is None or (secret or "").upper() == self.secret.upper())
        )


@dataclass
class RecordedRequest:
    """One request the fake received; the token itself is never kept."""

    method: str
    path: str  # without the API prefix
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    auth_scheme: str | None


@dataclass
class FakeActionsState:
    """What the fake knows and does; tests script it and read it back."""

    tokens: dict[str, Access] = field(default_factory=lambda: {"ghp_fake0write0token": "write"})
    api_prefix: str = ""
    repos: dict[tuple[str, str], FakeRepo] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _next_key_id: int = 568250167242549743

    @property
    def token(self) -> str:
        """Return the first token with write access."""
        return next(t for t, access in self.tokens.items() if access == "write")

    def _new_store(self) -> SecretStore:
        self._next_key_id += 1
        return SecretStore(key_id=str(self._next_key_id))

    def add_repo(self, owner: str, repo: str, *, environments: tuple[str, ...] = ()) -> FakeRepo:
        """Create a repository (names compare case-insensitively, as on GitHub)."""
        entry = self.repos.setdefault((owner.lower(), repo.lower()), FakeRepo(self._new_store()))
        for env in environments:
            entry.environments.setdefault(env.lower(), self._new_store())
        return entry

    def store(self, owner: str, repo: str, env: str | None = None) -> SecretStore:
        """Return a repository's or an environment's secret store (KeyError if unknown)."""
        entry = self.repos[(owner.lower(), repo.lower())]
        return entry.store if env is None else entry.environments[env.lower()]

    def seed(self, owner: str, repo: str, env: str | None, name: str, value: str = "x") -> None:
        """Create a secret as if someone had set it on GitHub directly."""
        store = self.store(owner, repo, env)
        stamp = _now()
        store.secrets[name.upper()] = StoredSecret(store.seal(value), value, stamp, stamp)

    def plaintext(self, owner: str, repo: str, env: str | None, name: str) -> str:
        """Return the real value of a secret, opened with the private key (KeyError if absent)."""
        return self.store(owner, repo, env).secrets[name.upper()].plaintext

    def names(self, owner: str, repo: str, env: str | None = None) -> list[str]:
        """Return the secret names of a repository or environment, sorted."""
        return sorted(self.store(owner, repo, env).secrets)

    def fail(
        self,
        status: int | None,
        *,
        path: str | None = None,
        method: str | None = None,
        secret: str | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "Scripted failure",
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` matching requests answer `status` (after `delay` seconds)."""
        self.faults.append(
            Fault(status, times, path, method, secret, headers or {}, message, delay)
        )

    def slow(self, delay: float, **match: Any) -> None:
        """Make the next matching requests wait `delay` seconds, then answer normally."""
        self.fail(None, delay=delay, **match)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Return the recorded requests to one API path (without prefix)."""
        return [r for r in self.requests if r.path == path and method in (None, r.method)]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"message": message, "documentation_url": REST_DOCS, "status": str(status)}
    return JSONResponse(body, status, headers)


def _request_validator(operation: dict[str, Any]) -> jsonschema.Draft202012Validator | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = _openapi_to_jsonschema(content["application/json"]["schema"])
    return jsonschema.Draft202012Validator(schema)


@dataclass
class _Operation:
    """One documented path + method, with its validators."""

    spec_path: str
    method: str
    query: dict[str, str]  # query parameter -> schema type
    request: jsonschema.Draft202012Validator | None
    responses: dict[int, jsonschema.Draft202012Validator | None]


def _operations() -> dict[tuple[str, str], _Operation]:
    spec = load_spec()
    found: dict[tuple[str, str], _Operation] = {}
    for spec_path in REPO_PATHS:
        for method, operation in spec["paths"][spec_path].items():
            query = {
                p["name"]: p["schema"]["type"]
                for p in operation.get("parameters", [])
                if p["in"] == "query"
            }
            responses: dict[int, jsonschema.Draft202012Validator | None] = {}
            for status, answer in operation["responses"].items():
                has_body = "application/json" in answer.get("content", {})
                responses[int(status)] = (
                    response_validator(spec_path, method, status) if has_body else None
                )
            found[(spec_path, method.upper())] = _Operation(
                spec_path, method.upper(), query, _request_validator(operation), responses
            )
    return found


def create_fake_github_actions(state: FakeActionsState) -> Starlette:
    """Build the fake as an ASGI app acting on `state`."""
    operations = _operations()

    def answer(op: _Operation, status: int, body: Any = None, **headers: str) -> Response:
        """Answer with a documented status, checking the body against its schema."""
        if status not in op.responses:
            state.violations.append(f"{op.method} {op.spec_path}: undocumented status {status}")
        validator = op.responses.get(status)
        if validator is None:
            if body is not None:
                state.violations.append(f"{op.method} {op.spec_path} {status}: unexpected body")
            return Response(status_code=status, headers=headers)
        for error in validator.iter_errors(body):
            state.violations.append(
                f"{op.method} {op.spec_path} {status} response: {error.message}"
            )
        return JSONResponse(body, status, headers)

    async def check_request(request: Request, op: _Operation) -> tuple[Any, Response | None]:
        """Record the request and check it against the spec; a 422 answer if it is invalid."""
        raw = await request.body()
        body: Any = None
        problems: list[str] = []
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                problems.append("body is not JSON")
        for name, value in request.query_params.items():
            kind = op.query.get(name)
            if kind is None:
                problems.append(f"undocumented query parameter {name}")
            elif kind == "integer" and not value.isdigit():
                problems.append(f"query parameter {name} is not an integer")
        if op.request is not None and not problems:
            problems += [f"request body: {e.message}" for e in op.request.iter_errors(body)]
        elif op.request is None and raw:
            problems.append("a body where none is documented")
        path = request.url.path.removeprefix(state.api_prefix)
        scheme, _, _token = request.headers.get("authorization", "").partition(" ")
        state.requests.append(
            RecordedRequest(
                request.method,
                path,
                dict(request.query_params),
                {k: v for k, v in request.headers.items() if k != "authorization"},
                body,
                scheme or None,
            )
        )
        if problems:
            state.violations += [f"{op.method} {op.spec_path}: {p}" for p in problems]
            return body, _error(422, "Invalid request.\n\n" + "; ".join(problems))
        return body, None

    def handler(op: _Operation) -> Any:
        async def endpoint(request: Request) -> Response:
            body, invalid = await check_request(request, op)
            params = request.path_params
            secret = params.get("secret_name")
            path = request.url.path.removeprefix(state.api_prefix)
            fault = next((f for f in state.faults if f.matches(op.method, path, secret)), None)
            if fault is not None:
                fault.times -= 1
                await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    return _error(fault.status, fault.message, fault.headers)
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            access = state.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
            if access is None:
                return _error(401, "Bad credentials")
            if invalid is not None:
                return invalid
            repo = state.repos.get((params["owner"].lower(), params["repo"].lower()))
            if repo is None:
                return _error(404, "Not Found")
            store = repo.store
            if "environment_name" in params:
                env = repo.environments.get(params["environment_name"].lower())
                if env is None:
                    return _error(404, "Not Found")
                store = env
            if op.spec_path.endswith("/public-key"):
                return answer(op, 200, {"key_id": store.key_id, "key": store.public_key})
            if access != "write":
                return _error(403, "Resource not accessible by personal access token")
            if secret is None:
                return list_secrets(op, request, store)
            return secret_operation(op, store, secret, body)

        return endpoint

    def list_secrets(op: _Operation, request: Request, store: SecretStore) -> Response:
        per_page = min(int(request.query_params.get("per_page", "30")), 100)
        page = max(int(request.query_params.get("page", "1")), 1)
        names = sorted(store.secrets)
        chunk = names[(page - 1) * per_page : page * per_page]
        items = [
            {
                "name": n,
                "created_at": store.secrets[n].created_at,
                "updated_at": store.secrets[n].updated_at,
            }
            for n in chunk
        ]
        headers = {}
        last = max(1, -(-len(names) // per_page))
        if page < last:
            url = f"{request.url.remove_query_params('page')}"
            sep = "&" if "?" in url else "?"
            headers["link"] = (
                f'<{url}{sep}page={page + 1}>; rel="next", <{url}{sep}page={last}>; rel="last"'
            )
        return answer(op, 200, {"total_count": len(names), "secrets": items}, **headers)

    def secret_operation(op: _Operation, store: SecretStore, secret: str, body: Any) -> Response:
        name = secret.upper()  # GitHub secret names are case-insensitive and kept uppercase
        existing = store.secrets.get(name)
        if op.method == "GET":
            if existing is None:
                return _error(404, "Not Found")
            return answer(
                op,
                200,
                {
                    "name": name,
                    "created_at": existing.created_at,
                    "updated_at": existing.updated_at,
                },
            )
        if op.method == "DELETE":
            if existing is None:
                return _error(404, "Not Found")
            del store.secrets[name]
            return answer(op, 204)
        if not _VALID_NAME.match(name) or name.startswith("GITHUB_"):
            return _error(
                422,
                "Secret names can only contain alphanumeric characters or '_', "
                "must not start with a number or with GITHUB_",
            )
        if body["key_id"] != store.key_id:
            return _error(422, "Bad request - key_id does not match the current public key")
        try:
            opened = SealedBox(store.private_key).decrypt(base64.b64decode(body["encrypted_value"]))
        except (binascii.Error, CryptoError):
            return _error(422, "Bad request - the value could not be decrypted")
        if len(opened) > MAX_VALUE_BYTES:
            return _error(422, "Secret value is too large")
        stamp = _now()
        created = existing.created_at if existing else stamp
        store.secrets[name] = StoredSecret(body["encrypted_value"], opened.decode(), created, stamp)
        return answer(op, 204) if existing else answer(op, 201, {})

    async def undocumented(request: Request) -> Response:
        path = request.url.path.removeprefix(state.api_prefix)
        state.violations.append(f"{request.method} {path}: not a documented operation")
        return _error(404, "Not Found")

    routes = [
        Route(f"{state.api_prefix}{op.spec_path}", handler(op), methods=[op.method])
        for op in operations.values()
    ]
    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[*routes, Route("/{path:path}", undocumented, methods=every)])


@contextmanager
def serve_fake_github_actions(state: FakeActionsState | None = None) -> Iterator[str]:
    """Run the fake on a free 127.0.0.1 port in a thread; yield its base URL.

    The API URL is the base URL plus `state.api_prefix`.
    """
    app = create_fake_github_actions(state or FakeActionsState())
    with serve_in_thread(app, "the fake GitHub Actions server") as url:
        yield url
