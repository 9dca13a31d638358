"""A fake GitHub for tests: the OAuth device flow and the user endpoints, as GitHub documents them.

Login endpoints live at the root (`/login/...`); API endpoints under `state.api_prefix`, which is
`""` for github.com (`https://api.github.com`) and `"/api/v3"` for GitHub Enterprise Server.

Script it through `FakeGitHubState`: every device code has a queue of poll outcomes (the last one
repeats; a success uses the code up), `fail_api` makes API calls fail, `requests` records what came.
In process: `httpx.ASGITransport(app=create_fake_github(state))`; as a real server on a free
loopback port: `with serve_fake_github(state) as url: ...`.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import jsonschema  # type: ignore[import-untyped, unused-ignore]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import serve_in_thread

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
ERROR_URI = (
    "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow"
)
REST_DOCS = "https://docs.github.com/rest"
# The repository lives at <root>/main (or any name); the shared specs beside it.
SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "specs"
    / "github-actions-secrets.openapi.json"
)

Outcome = Literal["pending", "slow_down", "success", "denied", "expired"]
_OUTCOME_ERRORS: dict[str, tuple[str, str]] = {
    "pending": ("authorization_pending", "The authorization request is still pending."),
    "slow_down": ("slow_down", "Too many requests have been made in the same timeframe."),
    "denied": ("access_denied", "The authorization request was denied."),
    "expired": ("expired_token", "This 'device_code' has expired."),
}
_TOKEN_ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "incorrect_device_code": "The device_code provided is not valid.",
    "unsupported_grant_type": "The grant type is not supported.",
    "device_flow_disabled": "Device Flow must be explicitly enabled for this App",
}


@dataclass
class FakeUser:
    """A GitHub account; `email` is the public profile email (None when kept private)."""

    id: int = 583231
    login: str = "octocat"
    name: str | None = "The Octocat"
    email: str | None = "octocat@github.com"
    emails: list[dict[str, Any]] = field(default_factory=list)  # what /user/emails lists
    private_fields: bool = True  # answer the "private-user" shape (else "public-user")
    # Organization login -> membership state ("active", or "pending": invited, not accepted).
    orgs: dict[str, Literal["active", "pending"]] = field(default_factory=dict)
    # Organizations that restrict OAuth app access and have not approved this app.
    restricted_orgs: set[str] = field(default_factory=set)

    def simple_json(self, web_url: str, api_url: str) -> dict[str, Any]:
        """Return the "simple-user" shape other answers embed."""
        full = self.to_json(web_url, api_url)
        keys = [
            "login",
            "id",
            "node_id",
            "avatar_url",
            "gravatar_id",
            "url",
            "html_url",
            "followers_url",
            "following_url",
            "gists_url",
            "starred_url",
            "subscriptions_url",
            "organizations_url",
            "repos_url",
            "events_url",
            "received_events_url",
            "type",
            "site_admin",
            "user_view_type",
        ]
        return {key: full[key] for key in keys}

    def to_json(self, web_url: str, api_url: str) -> dict[str, Any]:
        """Return the GET /user body, with every field the spec requires."""
        users = f"{api_url}/users/{self.login}"
        body: dict[str, Any] = {
            "login": self.login,
            "id": self.id,
            "node_id": f"MDQ6VXNlcj{self.id}",
            "avatar_url": f"{web_url}/avatars/u/{self.id}?v=4",
            "gravatar_id": "",
            "url": users,
            "html_url": f"{web_url}/{self.login}",
            "followers_url": f"{users}/followers",
            "following_url": f"{users}/following{{/other_user}}",
            "gists_url": f"{users}/gists{{/gist_id}}",
            "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{users}/subscriptions",
            "organizations_url": f"{users}/orgs",
            "repos_url": f"{users}/repos",
            "events_url": f"{users}/events{{/privacy}}",
            "received_events_url": f"{users}/received_events",
            "type": "User",
            "user_view_type": "private" if self.private_fields else "public",
            "site_admin": False,
            "name": self.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": self.email,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "notification_email": self.email,
            "public_repos": 8,
            "public_gists": 8,
            "followers": 20,
            "following": 9,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": "2024-06-01T10:00:00Z",
        }
        if self.private_fields:
            body |= {
                "private_gists": 0,
                "total_private_repos": 0,
                "owned_private_repos": 0,
                "disk_usage": 1024,
                "collaborators": 0,
                "two_factor_authentication": True,
                "plan": {
                    "name": "free",
                    "space": 976562499,
                    "collaborators": 0,
                    "private_repos": 10000,
                },
            }
        return body


def private_email_user() -> FakeUser:
    """Return a user who hides their email: /user says null, /user/emails has the truth."""
    return FakeUser(
        id=9919,
        login="hidden-hubber",
        name=None,
        email=None,
        emails=[
            {"email": "old@example.com", "primary": False, "verified": True, "visibility": None},
            {
                "email": "unverified@example.com",
                "primary": False,
                "verified": False,
                "visibility": None,
            },
            {
                "email": "hubber@example.com",
                "primary": True,
                "verified": True,
                "visibility": "private",
            },
        ],
    )


@dataclass
class RecordedRequest:
    """One request the fake received; `authorization` is never kept, only whether it came."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes
    had_authorization: bool


@dataclass
class _DeviceCode:
    """A device code GitHub handed out and what polling it will answer."""

    user_code: str
    outcomes: deque[Outcome]
    interval: int
    scope: str = ""


@dataclass
class FakeGitHubState:
    """What the fake knows and does; tests script it and read `requests` afterwards."""

    client_id: str = "Iv1.fake0client0id"
    client_secret: str | None = None  # when set, token requests must carry it
    api_prefix: str = ""
    interval: int = 5
    expires_in: int = 899
    device_flow_enabled: bool = True
    user: FakeUser = field(default_factory=FakeUser)
    default_outcomes: tuple[Outcome, ...] = ("success",)
    device_codes: dict[str, _DeviceCode] = field(default_factory=dict)
    tokens: dict[str, FakeUser] = field(default_factory=dict)
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)  # token -> granted scopes
    api_failures: dict[str, deque[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def add_device_code(self, *outcomes: Outcome) -> str:
        """Hand out a device code whose polls answer `outcomes` in turn (the last repeats)."""
        code = secrets.token_hex(20)
        queue = deque(outcomes or self.default_outcomes)
        self.device_codes[code] = _DeviceCode(
            f"{secrets.randbelow(10**8):08d}", queue, self.interval
        )
        return code

    def script(self, device_code: str, *outcomes: Outcome) -> None:
        """Replace what polls of an issued device code will answer."""
        self.device_codes[device_code].outcomes = deque(outcomes)

    def issue_token(self, user: FakeUser | None = None, scope: str = "read:user user:email") -> str:
        """Return a valid access token for a user, as if a device flow had finished."""
        token = f"gho_{secrets.token_urlsafe(27)}"
        self.tokens[token] = user or self.user
        self.scopes[token] = frozenset(scope.split())
        return token

    def fail_api(
        self, path: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Make the next `times` calls to an API path (without prefix) answer `status`."""
        queue = self.api_failures.setdefault(path, deque())
        queue.extend([(status, headers or {})] * times)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Return the recorded requests to one path (API paths without prefix)."""
        return [r for r in self.requests if r.path in (path, f"{self.api_prefix}{path}")]


def _oauth_answer(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    """Answer a login endpoint in JSON if asked for it, else form-encoded as GitHub does."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(body, status_code=status)
    return Response(urlencode(body), status, media_type="application/x-www-form-urlencoded")


def _oauth_error(request: Request, error: str, **extra: Any) -> Response:
    """Answer a token-endpoint error the GitHub way: HTTP 200 with an `error` body."""
    description = _TOKEN_ERRORS.get(error) or next(
        d for e, d in _OUTCOME_ERRORS.values() if e == error
    )
    return _oauth_answer(
        request, {"error": error, "error_description": description, "error_uri": ERROR_URI, **extra}
    )


def create_fake_github(state: FakeGitHubState) -> Starlette:
    """Build the fake GitHub as an ASGI app acting on `state`."""

    async def record(request: Request) -> dict[str, str]:
        """Keep the request (less its credentials) and return its form or JSON body."""
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
        else:
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        state.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                headers,
                form,
                raw,
                "authorization" in request.headers,
            )
        )
        return form

    def web_url(request: Request) -> str:
        """Return the fake's own base URL, the stand-in for https://github.com."""
        return str(request.base_url).rstrip("/")

    async def device_code(request: Request) -> Response:
        form = await record(request)
        if form.get("client_id") != state.client_id:
            return JSONResponse({"error": "Not Found"}, status_code=404)
        if not state.device_flow_enabled:
            return _oauth_answer(
                request,
                {
                    "error": "device_flow_disabled",
                    "error_description": _TOKEN_ERRORS["device_flow_disabled"],
                    "error_uri": "https://docs.github.com",
                },
                400,
            )
        code = state.add_device_code()
        # The token will carry the scopes asked for here (the user grants them or denies all).
        state.device_codes[code].scope = form.get("scope", "")
        user_code = state.device_codes[code].user_code
        return _oauth_answer(
            request,
            {
                "device_code": code,
                "user_code": f"{user_code[:4]}-{user_code[4:]}",
                "verification_uri": f"{web_url(request)}/login/device",
                "expires_in": state.expires_in,
                "interval": state.interval,
            },
        )

    async def access_token(request: Request) -> Response:
        form = await record(request)
        if form.get("client_id") != state.client_id or (
            state.client_secret is not None and form.get("client_secret") != state.client_secret
        ):
            return _oauth_error(request, "incorrect_client_credentials")
        if not state.device_flow_enabled:
            return _oauth_error(request, "device_flow_disabled")
        if form.get("grant_type") != DEVICE_GRANT_TYPE:
            return _oauth_error(request, "unsupported_grant_type")
        entry = state.device_codes.get(form.get("device_code", ""))
        if entry is None:
            return _oauth_error(request, "incorrect_device_code")
        outcome = entry.outcomes.popleft() if len(entry.outcomes) > 1 else entry.outcomes[0]
        if outcome == "success":
            del state.device_codes[form["device_code"]]  # a device code yields one token only
            token = state.issue_token(scope=entry.scope)
            granted = ",".join(entry.scope.split())
            return _oauth_answer(
                request, {"access_token": token, "token_type": "bearer", "scope": granted}
            )
        if outcome == "slow_down":
            entry.interval += 5
            return _oauth_error(request, "slow_down", interval=entry.interval)
        return _oauth_error(request, _OUTCOME_ERRORS[outcome][0])

    def api_user(request: Request, path: str) -> FakeUser | Response:
        """Return the user behind the bearer token, or a scripted failure or 401 instead."""
        failures = state.api_failures.get(path)
        if failures:
            status, headers = failures.popleft()
            body = {"message": "Scripted failure", "documentation_url": REST_DOCS}
            return JSONResponse(body, status, headers)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = state.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            body = {"message": "Bad credentials", "documentation_url": REST_DOCS, "status": "401"}
            return JSONResponse(body, status_code=401)
        return user

    async def get_user(request: Request) -> Response:
        await record(request)
        user = api_user(request, "/user")
        if isinstance(user, Response):
            return user
        web = web_url(request)
        token = request.headers.get("authorization", "").partition(" ")[2]
        headers = {
            "X-OAuth-Scopes": ", ".join(sorted(state.scopes.get(token, frozenset()))),
            "X-GitHub-Api-Version-Selected": "2022-11-28",
        }
        return JSONResponse(user.to_json(web, f"{web}{state.api_prefix}"), headers=headers)

    async def get_emails(request: Request) -> Response:
        await record(request)
        user = api_user(request, "/user/emails")
        return user if isinstance(user, Response) else JSONResponse(user.emails)

    async def get_membership(request: Request) -> Response:
        """GET /user/memberships/orgs/{org}: 200 for active or pending members, 404 when not
        affiliated, 403 when the organization blocks the app or the token lacks read:org."""
        await record(request)
        user = api_user(request, "/user/memberships/orgs")
        if isinstance(user, Response):
            return user
        token = request.headers.get("authorization", "").partition(" ")[2]
        org = request.path_params["org"].lower()  # organization names ignore case
        states = {name.lower(): (name, held) for name, held in user.orgs.items()}
        if not state.scopes.get(token, frozenset()) & {"read:org", "write:org", "admin:org"}:
            body = {"message": "You need at least read:org scope.", "documentation_url": REST_DOCS}
            return JSONResponse(body, status_code=403)
        if org in {name.lower() for name in user.restricted_orgs}:
            body = {
                "message": "Although you appear to have the correct authorization credentials, "
                "the organization has enabled OAuth App access restrictions.",
                "documentation_url": REST_DOCS,
            }
            return JSONResponse(body, status_code=403)
        if org not in states:
            body = {"message": "Not Found", "documentation_url": REST_DOCS, "status": "404"}
            return JSONResponse(body, status_code=404)
        name, membership = states[org]
        web = web_url(request)
        api = f"{web}{state.api_prefix}"
        organization = {
            "login": name,
            "id": 9919,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk=",
            "url": f"{api}/orgs/{name}",
            "repos_url": f"{api}/orgs/{name}/repos",
            "events_url": f"{api}/orgs/{name}/events",
            "hooks_url": f"{api}/orgs/{name}/hooks",
            "issues_url": f"{api}/orgs/{name}/issues",
            "members_url": f"{api}/orgs/{name}/members{{/member}}",
            "public_members_url": f"{api}/orgs/{name}/public_members{{/member}}",
            "avatar_url": f"{web}/avatars/o/9919?v=4",
            "description": None,
        }
        return JSONResponse(
            {
                "url": f"{api}/orgs/{name}/memberships/{user.login}",
                "state": membership,
                "role": "member",
                "organization_url": f"{api}/orgs/{name}",
                "organization": organization,
                "user": user.simple_json(web, api),
                "permissions": {"can_create_repository": False},
            }
        )

    async def not_found(request: Request) -> Response:
        await record(request)
        return JSONResponse(
            {"message": "Not Found", "documentation_url": REST_DOCS}, status_code=404
        )

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/login/device/code", device_code, methods=["POST"]),
            Route("/login/oauth/access_token", access_token, methods=["POST"]),
            Route(f"{state.api_prefix}/user", get_user, methods=["GET"]),
            Route(f"{state.api_prefix}/user/emails", get_emails, methods=["GET"]),
            Route(
                f"{state.api_prefix}/user/memberships/orgs/{{org}}", get_membership, methods=["GET"]
            ),
            Route("/{path:path}", not_found, methods=every_method),
        ]
    )


def _openapi_to_jsonschema(node: Any) -> Any:
    """Turn OpenAPI 3.0's `nullable: true` into JSON Schema's `"null"` type, recursively."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _is_uri(value: object) -> bool:
    """Tell whether a value is an absolute URI (jsonschema needs an extra package for this)."""
    parts = urlsplit(str(value))
    return bool(parts.scheme and parts.netloc)


def _is_datetime(value: object) -> bool:
    """Tell whether a value is an RFC 3339 timestamp with a time zone."""
    text = str(value).replace("Z", "+00:00")
    return "T" in text and datetime.fromisoformat(text).tzinfo is not None


def load_spec() -> dict[str, Any]:
    """Load the GitHub OpenAPI description kept beside the repository."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def response_validator(
    path: str, method: str = "get", status: str = "200"
) -> jsonschema.Draft202012Validator:
    """Return a validator for one documented JSON response, checking formats too."""
    operation = load_spec()["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    checker = jsonschema.FormatChecker()
    checker.checks("uri")(_is_uri)
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    return jsonschema.Draft202012Validator(_openapi_to_jsonschema(schema), format_checker=checker)


@contextmanager
def serve_fake_github(state: FakeGitHubState | None = None) -> Iterator[str]:
    """Run the fake on a free 127.0.0.1 port in a thread; yield its base URL (the web URL).

    The API URL is the base URL plus `state.api_prefix`.
    """
    app = create_fake_github(state or FakeGitHubState())
    with serve_in_thread(app, "the fake GitHub server") as url:
        yield url
