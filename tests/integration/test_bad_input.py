"""Bad input everywhere: each a clear 4xx with a stable error_code, and nothing written.

Every case counts the rows of every table before and after. Only what is written on
purpose may change: a failed refresh is audited, and a reused refresh token also revokes its
session (an update, not a new row). A 422 says what is wrong in words (with en dashes in
ranges), never with a regular expression or pydantic's phrasing.
"""

# ruff: noqa: RUF001

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select
from starlette.types import Message

from kavach.server.db.registry import metadata
from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login

ENVELOPE_KEYS = {"success", "data", "error", "error_code"}
# What a refusal must never say: a regular expression, or pydantic's own phrasing.
JARGON = ("should", "String ", "Input ", "pattern", "^", "[a-", "Value error", "Field required")
NAMES = "names are 1–63 characters: a–z, 0–9, '.', '_' or '-', starting with a letter or digit"
SECRET_NAMES = (
    "secret names are 1–256 characters: letters, digits, '_', '.' or '-', "
    "starting with a letter or '_'"
)
VERSION_REFS = (
    "a version is its id (8 characters: a–z and 0–9), its number (3 or v3), latest or latest~N"
)
DEEP = 10_000


@dataclass
class World:
    """alice, signed in, owning acme/web/prod with one version, a service token, a user group."""

    access: str
    refresh: str
    service_token: str
    org: str
    group: str
    env: str
    user_group: str
    version: str


@dataclass
class Bad:
    """One bad request and the answer it must get."""

    label: str
    method: str
    path: str
    status: int
    code: str
    content: bytes | None = None
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    auth: str | None = "access"  # which of the world's credentials to send, if any
    # Rows that may change on purpose (e.g. the audit event of a failed refresh).
    writes: dict[str, int] = field(default_factory=dict)
    says: str = ""  # a part of the error message that tells the client what to fix


async def counts(server: InProcessServer) -> dict[str, int]:
    """Count the rows of every table."""
    async with server.runtime.sessionmaker() as session:
        return {
            table.name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }


async def _call(server: InProcessServer, method: str, path: str, token: str, body: object) -> Any:
    response = await server.client.request(
        method, f"/api/v1{path}", json=body, headers=bearer(token)
    )
    assert response.status_code < 300, response.text
    return response.json()["data"]


@pytest.fixture
async def world(server: InProcessServer) -> World:
    """Build alice's world."""
    tokens = await login(server, "alice")
    await login(server, "bob")
    access = tokens["access_token"]
    org = await _call(server, "POST", "/organizations/", access, {"name": "acme"})
    group = await _call(
        server, "POST", f"/organizations/{org['id']}/secret-groups", access, {"name": "web"}
    )
    env = await _call(
        server, "POST", f"/secret-groups/{group['id']}/environments", access, {"name": "prod"}
    )
    version = await _call(
        server,
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        access,
        {"message": "first", "set": {"DB_URL": "postgres://db", "API_KEY": "k1"}},
    )
    token = await _call(
        server,
        "POST",
        f"/environments/{env['id']}/tokens",
        access,
        {"name": "ci", "role": "editor"},
    )
    user_group = await _call(
        server, "POST", "/user-groups/", access, {"name": "devs", "organization_id": org["id"]}
    )
    return World(
        access=access,
        refresh=tokens["refresh_token"],
        service_token=token["token"],
        org=org["id"],
        group=group["id"],
        env=env["id"],
        user_group=user_group["id"],
        version=version["id"],
    )


def _credential(world: World, auth: str | None) -> dict[str, str | bytes]:
    if auth is None:
        return {}
    value = {"access": world.access, "service": world.service_token}.get(auth, auth)
    return {"Authorization": f"Bearer {value}"}


def _wire_headers(headers: Mapping[str, str | bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in headers.items()}


def _check_envelope(response: httpx.Response, status: int, code: str, says: str = "") -> str | None:
    """Return what is wrong with a failure response, or None."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.status_code} {response.text[:200]!r}"
    got = (response.status_code, body.get("error_code") if isinstance(body, dict) else None)
    if got != (status, code):
        return f"expected {status} {code}, got {got[0]} {got[1]}: {response.text[:300]}"
    if set(body) != ENVELOPE_KEYS or body["success"] is not False or not body["error"]:
        return f"not a failure envelope: {body!r}"
    if says not in body["error"]:
        return f"the error does not say {says!r}: {body['error']!r}"
    if status == 422:
        messages = [body["error"], *(e["message"] for e in (body["data"] or {}).get("errors", []))]
        jargon = [bit for bit in JARGON for message in messages if bit in message]
        if jargon:
            return f"the error is not in words ({jargon}): {body['error']!r}"
    return None


async def run_cases(server: InProcessServer, world: World, cases: Sequence[Bad]) -> None:
    """Send every case; collect every mismatch and every unexpected write, then fail once."""
    problems = []
    # A crash must come back as the 500 a real server would send, to be reported with the rest.
    transport = httpx.ASGITransport(
        app=server.app, raise_app_exceptions=False, client=("127.0.0.1", 50000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        for case in cases:
            problems += await _run_case(server, client, world, case)
    assert not problems, "\n".join(problems)


async def _run_case(
    server: InProcessServer, client: httpx.AsyncClient, world: World, case: Bad
) -> list[str]:
    before = await counts(server)
    response = await client.request(
        case.method,
        f"/api/v1{case.path}",
        content=case.content,
        headers=_wire_headers({**_credential(world, case.auth), **case.headers}),
    )
    after = await counts(server)
    problems = []
    wrong = _check_envelope(response, case.status, case.code, case.says)
    if wrong:
        problems.append(f"{case.label}: {wrong}")
    expected = {name: before[name] + case.writes.get(name, 0) for name in before}
    changed = {name: (before[name], after[name]) for name in after if after[name] != expected[name]}
    if changed:
        problems.append(f"{case.label}: rows changed (before, after): {changed}")
    return problems


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


JSON = {"Content-Type": "application/json"}


# --- sizes ---------------------------------------------------------------------------------


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"message": "big", "set": {"A": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


async def _raw(
    server: InProcessServer, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, Any]]:
    """Drive the ASGI app directly, so the Content-Length header can lie about the body."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    await server.app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


async def test_bodies_over_the_limit_are_413_however_they_arrive(
    server: InProcessServer, world: World
) -> None:
    limit = server.runtime.settings.max_body_bytes
    before = await counts(server)
    commit = f"/api/v1/environments/{world.env}/secrets/versions"
    headers = {**JSON, **bearer(world.access)}
    big = b'{"message": "m", "set": {"A": "' + b"x" * limit + b'"}}'
    problems = []

    honest = await server.client.post(commit, content=big, headers=headers)
    problems.append(("declared length", _check_envelope(honest, 413, "payload_too_large")))

    # No Content-Length: the body streams in chunks until it passes the limit.
    chunked = await server.client.post(commit, content=_chunks(limit), headers=headers)
    assert "content-length" not in chunked.request.headers
    problems.append(("chunked", _check_envelope(chunked, 413, "payload_too_large")))

    # A route that reads the body inside a dependency (the user group's organization).
    chunked_dep = await server.client.post(
        "/api/v1/user-groups/", content=_chunks(limit), headers=headers
    )
    problems.append(
        ("chunked, read by a dependency", _check_envelope(chunked_dep, 413, "payload_too_large"))
    )

    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    for label, declared in (("Content-Length says 100", "100"), ("Content-Length says 0", "0")):
        status, body = await _raw(
            server, "POST", commit, {**headers, "Content-Length": declared}, pieces
        )
        if (status, body.get("error_code")) != (413, "payload_too_large"):
            problems.append((label, f"got {status} {body}"))
    status, body = await _raw(
        server, "POST", commit, {**headers, "Content-Length": str(limit * 10)}, [b"{}"]
    )
    if (status, body.get("error_code")) != (413, "payload_too_large"):
        problems.append(("Content-Length larger than the limit, tiny body", f"got {status} {body}"))

    assert [p for p in problems if p[1]] == []
    assert await counts(server) == before


# --- malformed bodies ----------------------------------------------------------------------


def _nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


def body_cases(world: World) -> list[Bad]:
    """Bodies that are not acceptable JSON for the route."""
    commit = f"/environments/{world.env}/secrets/versions"
    validation = "validation_failed"
    deep_object = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    return [
        Bad("malformed JSON", "POST", "/organizations/", 422, validation, b'{"name": "x"', JSON),
        Bad("empty JSON body", "POST", commit, 422, validation, b"", JSON),
        Bad("JSON array, not object", "POST", "/organizations/", 422, validation, b"[]", JSON),
        Bad("JSON string, not object", "POST", commit, 422, validation, b'"hi"', JSON),
        Bad("JSON null body", "POST", commit, 422, validation, b"null", JSON),
        Bad(
            "invalid UTF-8 in a name",
            "POST",
            "/organizations/",
            422,
            validation,
            b'{"name": "acme\xff\xfe"}',
            JSON,
        ),
        Bad(
            "invalid UTF-8 in a secret value",
            "POST",
            commit,
            422,
            validation,
            b'{"message": "m", "set": {"A": "\xc3\x28"}}',
            JSON,
        ),
        Bad(
            "unpaired surrogate escape in a secret value",
            "POST",
            commit,
            422,
            validation,
            b'{"message": "m", "set": {"A": "\\ud800"}}',
            JSON,
        ),
        Bad(
            "unpaired surrogate escape in a description",
            "POST",
            "/organizations/",
            422,
            validation,
            b'{"name": "acme2", "description": "\\udfff"}',
            JSON,
        ),
        Bad(
            "unpaired surrogate escape in a refresh token",
            "POST",
            "/auth/refresh",
            422,
            validation,
            b'{"refresh_token": "kvr_\\ud83d"}',
            JSON,
            auth=None,
        ),
        Bad(
            "UTF-16 body",
            "POST",
            "/organizations/",
            422,
            validation,
            '{"name": "acme3"}'.encode("utf-16"),
            JSON,
        ),
        Bad(
            "NaN in JSON",
            "POST",
            f"/environments/{world.env}/tokens",
            422,
            validation,
            b'{"name": "t", "role": "viewer", "expires_in": NaN}',
            JSON,
        ),
        Bad(
            "Infinity in JSON",
            "POST",
            f"/environments/{world.env}/tokens",
            422,
            validation,
            b'{"name": "t", "role": "viewer", "expires_in": Infinity}',
            JSON,
        ),
        Bad(
            "integer with 400 digits",
            "POST",
            f"/environments/{world.env}/tokens",
            422,
            validation,
            b'{"name": "t", "role": "viewer", "expires_in": 1' + b"0" * 400 + b"}",
            JSON,
        ),
        Bad(
            f"arrays nested {DEEP} deep",
            "POST",
            commit,
            422,
            validation,
            _nested(DEEP),
            JSON,
            says="depth limit exceeded",
        ),
        Bad(
            f"objects nested {DEEP} deep in a secret map",
            "POST",
            commit,
            422,
            validation,
            b'{"message": "m", "set": ' + deep_object + b"}",
            JSON,
        ),
        Bad(
            f"objects nested {DEEP} deep in provider config",
            "POST",
            f"/environments/{world.env}/providers/",
            422,
            validation,
            b'{"provider": "github", "config": ' + deep_object + b"}",
            JSON,
        ),
        Bad(
            "objects nested 1000 deep in provider config",
            "POST",
            f"/environments/{world.env}/providers/",
            422,
            validation,
            b'{"provider": "github", "config": {"owner": '
            + b'{"a":' * 1000
            + b"1"
            + b"}" * 1000
            + b"}}",
            JSON,
        ),
        Bad(
            f"objects nested {DEEP} deep, body read by a dependency",
            "POST",
            "/user-groups/",
            422,
            validation,
            deep_object,
            JSON,
        ),
    ]


def content_type_cases(world: World) -> list[Bad]:
    """JSON routes sent something that is not JSON: one answer, 415."""
    create = _json({"name": "acme9"})
    commit = f"/environments/{world.env}/secrets/versions"
    unsupported = "unsupported_media_type"
    cases = [
        Bad(
            "text/plain",
            "POST",
            "/organizations/",
            415,
            unsupported,
            create,
            {"Content-Type": "text/plain"},
        ),
        Bad(
            "form",
            "POST",
            "/organizations/",
            415,
            unsupported,
            b"name=acme9",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        Bad(
            "multipart",
            "POST",
            "/organizations/",
            415,
            unsupported,
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nacme9\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
        Bad(
            "no content type",
            "POST",
            commit,
            415,
            unsupported,
            _json({"message": "m", "set": {"A": "1"}}),
        ),
        Bad(
            "text/json lookalike",
            "PATCH",
            f"/organizations/{world.org}",
            415,
            unsupported,
            _json({"description": "d"}),
            {"Content-Type": "text/json"},
        ),
        Bad(
            "form on a body read by a dependency",
            "POST",
            "/user-groups/",
            415,
            unsupported,
            f"name=devs2&organization_id={world.org}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        Bad(
            "text/plain to refresh",
            "POST",
            "/auth/refresh",
            415,
            unsupported,
            _json({"refresh_token": "kvr_x"}),
            {"Content-Type": "text/plain"},
            auth=None,
        ),
    ]
    for case in cases:
        case.says = "application/json"
    return cases


async def test_malformed_bodies_are_422_and_write_nothing(
    server: InProcessServer, world: World
) -> None:
    await run_cases(server, world, body_cases(world))


async def test_non_json_content_types_are_415_and_write_nothing(
    server: InProcessServer, world: World
) -> None:
    await run_cases(server, world, content_type_cases(world))


async def test_json_content_type_variants_are_accepted(
    server: InProcessServer, world: World
) -> None:
    for n, content_type in enumerate(
        ("application/json", "application/json; charset=utf-8", "application/merge-patch+json")
    ):
        response = await server.client.post(
            "/api/v1/organizations/",
            content=_json({"name": f"ok-{n}"}),
            headers={"Content-Type": content_type, **bearer(world.access)},
        )
        assert response.status_code == 201, (content_type, response.text)


# --- NUL characters and long names ---------------------------------------------------------


def text_cases(world: World) -> list[Bad]:
    """NUL in names, messages and URLs; names and texts over their limits."""
    commit = f"/environments/{world.env}/secrets/versions"
    members = f"/environments/{world.env}/members"
    validation = "validation_failed"

    def body(label: str, method: str, path: str, value: object) -> Bad:
        return Bad(label, method, path, 422, validation, _json(value), JSON)

    return [
        body("NUL in an organization name", "POST", "/organizations/", {"name": "ac\x00me"}),
        body(
            "NUL in a secret group name",
            "POST",
            f"/organizations/{world.org}/secret-groups",
            {"name": "w\x00"},
        ),
        body(
            "NUL in an environment name",
            "POST",
            f"/secret-groups/{world.group}/environments",
            {"name": "\x00"},
        ),
        body("NUL in a secret name", "POST", commit, {"message": "m", "set": {"A\x00B": "v"}}),
        body("NUL in a name to unset", "POST", commit, {"message": "m", "unset": ["DB_URL\x00"]}),
        body(
            "NUL in a service token name",
            "POST",
            f"/environments/{world.env}/tokens",
            {"name": "ci\x00", "role": "viewer"},
        ),
        body(
            "NUL in a user group name",
            "POST",
            "/user-groups/",
            {"name": "d\x00", "organization_id": world.org},
        ),
        body(
            "NUL in a description",
            "POST",
            "/organizations/",
            {"name": "acme4", "description": "the\x00company"},
        ),
        body(
            "NUL in a description update",
            "PATCH",
            f"/environments/{world.env}",
            {"description": "\x00"},
        ),
        body("NUL in a commit message", "POST", commit, {"message": "fix\x00", "set": {"B": "1"}}),
        body(
            "NUL in a rollback message",
            "POST",
            f"/environments/{world.env}/secrets/rollback",
            {"version_id": world.version, "commit_message": "\x00"},
        ),
        body("NUL in a member's login", "POST", members, {"user": "bob\x00", "role": "viewer"}),
        body(
            "NUL in a user group reference",
            "POST",
            members,
            {"user_group": "devs\x00", "role": "viewer"},
        ),
        body(
            "NUL in a user group member",
            "POST",
            f"/user-groups/{world.user_group}/members",
            {"user": "\x00bob"},
        ),
        body(
            "NUL in a provider name",
            "POST",
            f"/environments/{world.env}/providers/",
            {"provider": "git\x00hub"},
        ),
        body(
            "NUL in a sync provider",
            "POST",
            f"/environments/{world.env}/secrets/sync",
            {"provider": "github\x00"},
        ),
        Bad(
            "NUL in a path name",
            "GET",
            "/organizations/by-name/ac%00me",
            422,
            validation,
            says="NUL",
        ),
        Bad("NUL in a path id", "GET", f"/environments/{world.env}%00", 422, validation),
        Bad(
            "NUL in a version id",
            "GET",
            f"/environments/{world.env}/secrets/versions/ab%00cdefg",
            422,
            validation,
        ),
        Bad(
            "NUL in a provider path",
            "GET",
            f"/environments/{world.env}/providers/git%00hub",
            422,
            validation,
        ),
        Bad(
            "NUL in a query value",
            "GET",
            f"/secret-groups/{world.group}/environments?name=p%00",
            422,
            validation,
        ),
        Bad(
            "NUL in a query name",
            "GET",
            f"/environments/{world.env}/secrets?ver%00sion=x",
            422,
            validation,
        ),
        body("organization name of 64 characters", "POST", "/organizations/", {"name": "a" * 64}),
        body(
            "organization name of 100,000 characters",
            "POST",
            "/organizations/",
            {"name": "a" * 100_000},
        ),
        body(
            "secret name of 257 characters",
            "POST",
            commit,
            {"message": "m", "set": {"A" * 257: "v"}},
        ),
        body(
            "service token name of 64 characters",
            "POST",
            f"/environments/{world.env}/tokens",
            {"name": "t" * 64, "role": "viewer"},
        ),
        body(
            "description of 501 characters",
            "PATCH",
            f"/organizations/{world.org}",
            {"description": "d" * 501},
        ),
        body(
            "commit message of 501 characters",
            "POST",
            commit,
            {"message": "m" * 501, "set": {"B": "1"}},
        ),
        body(
            "member login of 256 characters", "POST", members, {"user": "b" * 256, "role": "viewer"}
        ),
        body(
            "provider name of 33 characters",
            "POST",
            f"/environments/{world.env}/providers/",
            {"provider": "p" * 33},
        ),
        Bad(
            "path name of 10,000 characters",
            "GET",
            "/organizations/by-name/" + "a" * 10_000,
            404,
            "not_found",
        ),
        Bad(
            "version id of 10,000 characters",
            "GET",
            f"/environments/{world.env}/secrets/versions/{'v' * 10_000}",
            422,
            "validation_failed",
        ),
        Bad(
            "limit=0, under the smallest page",
            "GET",
            f"/environments/{world.env}/secrets/versions?limit=0",
            422,
            validation,
        ),
        Bad(
            "limit=1001, over the largest page",
            "GET",
            f"/environments/{world.env}/secrets/versions?limit=1001",
            422,
            validation,
        ),
        Bad(
            "a cursor that is no cursor",
            "GET",
            f"/environments/{world.env}/secrets/versions?cursor=not-a-cursor",
            422,
            validation,
        ),
        Bad(
            "a malformed audit cursor",
            "GET",
            f"/audit?organization_id={world.org}&cursor=not-a-cursor",
            422,
            validation,
        ),
        Bad(
            "a secret value over the value limit",
            "POST",
            commit,
            413,
            "value_too_large",
            _json({"message": "m", "set": {"B": "1", "C": "x" * (64 * 1024 + 1)}}),
            JSON,
        ),
    ]


def words_cases(world: World) -> list[Bad]:
    """Refusals that say the rule broken, for each kind of name and field."""
    commit = f"/environments/{world.env}/secrets/versions"
    secrets_path = f"/environments/{world.env}/secrets"
    providers = f"/environments/{world.env}/providers/"
    tokens = f"/environments/{world.env}/tokens"

    def body(label: str, method: str, path: str, value: object, says: str) -> Bad:
        return Bad(label, method, path, 422, "validation_failed", _json(value), JSON, says=says)

    def github(config: dict[str, str], says: str) -> Bad:
        value = {"provider": "github", "config": config, "credentials": {"token": "t"}}
        return body(f"GitHub {config}", "POST", providers, value, says)

    return [
        body("organization", "POST", "/organizations/", {"name": "Acme!"}, f"name: {NAMES}"),
        body(
            "secret group",
            "POST",
            f"/organizations/{world.org}/secret-groups",
            {"name": "Web"},
            f"name: {NAMES}",
        ),
        body(
            "environment",
            "POST",
            f"/secret-groups/{world.group}/environments",
            {"name": ""},
            f"name: {NAMES}",
        ),
        body(
            "rename",
            "PATCH",
            f"/environments/{world.env}",
            {"name": "-prod"},
            f"name: {NAMES}",
        ),
        body(
            "user group",
            "POST",
            "/user-groups/",
            {"name": "d" * 64, "organization_id": world.org},
            f"name: {NAMES}",
        ),
        body("service token", "POST", tokens, {"name": "CI", "role": "viewer"}, f"name: {NAMES}"),
        body(
            "secret name to set",
            "POST",
            commit,
            {"message": "m", "set": {"1ABC": "v"}},
            f"set.1ABC: {SECRET_NAMES}",
        ),
        body(
            "secret name to unset",
            "POST",
            commit,
            {"message": "m", "unset": ["a b"]},
            f"unset.0: {SECRET_NAMES}",
        ),
        Bad(
            "secret name in the path",
            "GET",
            f"{secrets_path}/1bad/history",
            422,
            "validation_failed",
            says=f"name: {SECRET_NAMES}",
        ),
        Bad(
            "version in the query",
            "GET",
            f"{secrets_path}?version=ABCDEFGH",
            422,
            "validation_failed",
            says=f"version: {VERSION_REFS}",
        ),
        body(
            "version to roll back to",
            "POST",
            f"{secrets_path}/rollback",
            {"version_id": "v1.0", "commit_message": "m"},
            f"version_id: {VERSION_REFS}",
        ),
        body(
            "empty message",
            "POST",
            commit,
            {"message": "", "set": {"B": "1"}},
            "message: must not be empty",
        ),
        body(
            "long message",
            "POST",
            commit,
            {"message": "m" * 501, "set": {"B": "1"}},
            "message: must be at most 500 characters",
        ),
        body(
            "NUL in a message",
            "POST",
            commit,
            {"message": "a\x00", "set": {"B": "1"}},
            "message: must not contain a NUL character",
        ),
        body(
            "both set and unset",
            "POST",
            commit,
            {"message": "m", "set": {"B": "1"}, "unset": ["B"]},
            "body: a name cannot be both set and unset",
        ),
        body("missing field", "POST", "/organizations/", {}, "name: is required"),
        body(
            "unknown field",
            "POST",
            "/organizations/",
            {"name": "acme5", "colour": "red"},
            "colour: is not a field of this request",
        ),
        body("wrong type", "POST", "/organizations/", {"name": 5}, "name: must be a string"),
        body(
            "unknown role",
            "POST",
            tokens,
            {"name": "ci2", "role": "god"},
            "role: must be one of 'viewer' or 'editor'",
        ),
        body(
            "short lifetime",
            "POST",
            tokens,
            {"name": "ci2", "role": "viewer", "expires_in": 10},
            "expires_in: must be at least 60",
        ),
        Bad(
            "page size",
            "GET",
            f"{secrets_path}/versions?limit=0",
            422,
            "validation_failed",
            says="limit: must be at least 1",
        ),
        Bad(
            "an id that is no id",
            "GET",
            "/audit?organization_id=acme",
            422,
            "validation_failed",
        ),
        github({"owner": "-acme", "repository": "web"}, "owner: owners are 1–100 characters"),
        github({"owner": "acme", "repository": ".."}, "a repository name cannot be '.' or '..'"),
        body(
            "GCP project",
            "POST",
            providers,
            {
                "provider": "gcp",
                "config": {"project_id": "X"},
                "credentials": {"type": "service_account"},
            },
            "project_id: project ids are 6–30 characters",
        ),
        body(
            "Azure tenant",
            "POST",
            providers,
            {
                "provider": "azure",
                "config": {"vault_url": "https://v.vault.azure.net"},
                "credentials": {"tenant_id": "a b", "client_id": "c", "client_secret": "hunter2"},
            },
            "tenant_id: tenant ids hold only letters, digits, '.' and '-'",
        ),
    ]


async def test_refusals_say_the_rule_in_words(server: InProcessServer, world: World) -> None:
    await run_cases(server, world, words_cases(world))


async def test_nul_characters_and_long_names_are_422_and_write_nothing(
    server: InProcessServer, world: World
) -> None:
    await run_cases(server, world, text_cases(world))


async def test_a_cursor_from_another_listing_is_422_and_writes_nothing(
    server: InProcessServer, world: World
) -> None:
    page = await _call(
        server, "GET", f"/audit?organization_id={world.org}&limit=1", world.access, None
    )
    cursor = page["next"]
    assert cursor is not None  # the world's making left more than one audit event
    await run_cases(
        server,
        world,
        [
            Bad(
                "an audit cursor given to the versions",
                "GET",
                f"/environments/{world.env}/secrets/versions?cursor={cursor}",
                422,
                "validation_failed",
            ),
            Bad(
                "an audit cursor given to the organizations",
                "GET",
                f"/organizations/?cursor={cursor}",
                422,
                "validation_failed",
            ),
        ],
    )


async def test_secret_values_may_hold_nul_and_any_unicode(
    server: InProcessServer, world: World
) -> None:
    values = {"NUL": "a\x00b", "ONLY_NUL": "\x00", "EMOJI": "🔑\u2028ü", "CONTROL": "\x01\x7f\t"}
    response = await server.client.post(
        f"/api/v1/environments/{world.env}/secrets/versions",
        json={"message": "binary-ish values", "set": values},
        headers=bearer(world.access),
    )
    assert response.status_code == 201, response.text
    read = await server.client.get(
        f"/api/v1/environments/{world.env}/secrets", headers=bearer(world.access)
    )
    stored = read.json()["data"]["secrets"]
    assert {name: stored[name] for name in values} == values


# --- tokens --------------------------------------------------------------------------------


def _claims(server: InProcessServer, **changes: object) -> dict[str, object]:
    settings = server.runtime.settings.auth
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "typ": "access",
        "jti": secrets.token_urlsafe(8),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(
    server: InProcessServer, key: bytes | None = None, alg: str = "HS256", **changes: object
) -> str:
    return jwt.encode(
        _claims(server, **changes), key or server.runtime.keys.jwt_signing_key, algorithm=alg
    )


def _unsigned(server: InProcessServer, **changes: object) -> str:
    import base64

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(_claims(server, **changes))}."


def _users_claims(world: World) -> dict[str, Any]:
    real = jwt.decode(world.access, options={"verify_signature": False})
    return {"sub": real["sub"], "sid": real["sid"]}


def token_cases(server: InProcessServer, world: World) -> list[Bad]:
    """Bearer tokens that must not authenticate, and refresh tokens that must not refresh."""
    me = "/auth/me"
    invalid = "invalid_token"
    mine = _users_claims(world)
    key = server.runtime.keys.jwt_signing_key
    refresh_failed = {"audit_events": 1}

    def bearer_case(label: str, token: str, code: str = invalid) -> Bad:
        return Bad(label, "GET", me, 401, code, auth=token)

    def refresh_case(label: str, token: str) -> Bad:
        return Bad(
            label,
            "POST",
            "/auth/refresh",
            401,
            "invalid_refresh_token",
            _json({"refresh_token": token}),
            JSON,
            auth=None,
            writes=refresh_failed,
        )

    header, payload, signature = world.access.split(".")
    return [
        bearer_case("garbage", "not-a-jwt"),
        bearer_case("three dots of garbage", "a.b.c"),
        Bad(
            "non-ASCII bytes",
            "GET",
            me,
            401,
            invalid,
            headers={"Authorization": "Bearer é.é.\xff".encode("latin-1")},
            auth=None,
        ),
        bearer_case("a JWT cut short", world.access[:-10]),
        bearer_case("signature of another token", f"{header}.{payload}.{'A' * len(signature)}"),
        bearer_case(
            "payload swapped under a valid signature",
            f"{header}.{_signed(server, **mine).split('.')[1]}x.{signature}",
        ),
        bearer_case("alg none", _unsigned(server, **mine)),
        bearer_case("alg none, no signature part", _unsigned(server, **mine)[:-1]),
        bearer_case(
            "HS256 with the wrong key", _signed(server, key=secrets.token_bytes(32), **mine)
        ),
        bearer_case("HS512 with the right key", _signed(server, alg="HS512", **mine)),
        bearer_case(
            "expired",
            _signed(server, exp=int(datetime.now(UTC).timestamp()) - 60, **mine),
            "token_expired",
        ),
        bearer_case(
            "not yet valid", _signed(server, nbf=int(datetime.now(UTC).timestamp()) + 3600, **mine)
        ),
        bearer_case(
            "issued in the future",
            _signed(server, iat=int(datetime.now(UTC).timestamp()) + 3600, **mine),
        ),
        bearer_case("wrong audience", _signed(server, aud="someone-else", **mine)),
        bearer_case("wrong issuer", _signed(server, iss="someone-else", **mine)),
        bearer_case("typ refresh", _signed(server, typ="refresh", **mine)),
        bearer_case("no typ", _signed(server, typ=None, **mine)),
        bearer_case("no session id", _signed(server, sub=mine["sub"], sid=None)),
        bearer_case("sub not a UUID", _signed(server, sub="alice", sid=mine["sid"])),
        bearer_case("sid not a UUID", _signed(server, sub=mine["sub"], sid="1")),
        bearer_case("sub a number", _signed(server, sub=42, sid=mine["sid"])),
        bearer_case("exp a string", _signed(server, exp="tomorrow", **mine)),
        bearer_case("exp infinite", _signed(server, exp=float("inf"), **mine)),
        bearer_case(
            "another user's session", _signed(server, sub=str(uuid.uuid4()), sid=mine["sid"])
        ),
        bearer_case("unknown session", _signed(server)),
        bearer_case("refresh token as bearer", world.refresh),
        bearer_case("unknown service token", "kvt_" + secrets.token_urlsafe(32)),
        Bad(
            "Basic scheme",
            "GET",
            me,
            401,
            "not_authenticated",
            headers={"Authorization": "Basic YWxpY2U6eA=="},
            auth=None,
        ),
        Bad(
            "Bearer without a token",
            "GET",
            me,
            401,
            "not_authenticated",
            headers={"Authorization": "Bearer"},
            auth=None,
        ),
        Bad("service token where a user is needed", "GET", me, 403, "forbidden", auth="service"),
        refresh_case("access token to refresh", world.access),
        refresh_case("service token to refresh", world.service_token),
        refresh_case("unknown refresh token", "kvr_" + secrets.token_urlsafe(32)),
        refresh_case(
            "a JWT signed with the right key", _signed(server, key=key, typ="refresh", **mine)
        ),
    ]


# The HS512 forgery uses the server's 32-byte key on purpose.
@pytest.mark.filterwarnings("ignore:The HMAC key is")
async def test_bad_tokens_are_401_and_write_nothing(server: InProcessServer, world: World) -> None:
    await run_cases(server, world, token_cases(server, world))
    # alice's own tokens were never harmed by any of it.
    me = await server.client.get("/api/v1/auth/me", headers=bearer(world.access))
    assert me.status_code == 200


async def test_refresh_token_reuse_is_401_and_writes_only_the_revocation(
    server: InProcessServer, world: World
) -> None:
    first = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": world.refresh})
    assert first.status_code == 200
    fresh = first.json()["data"]
    cases = [
        Bad(
            "reused refresh token",
            "POST",
            "/auth/refresh",
            401,
            "refresh_token_reused",
            _json({"refresh_token": world.refresh}),
            JSON,
            auth=None,
            writes={"audit_events": 1},
        ),
        Bad(
            "the newer refresh token after reuse",
            "POST",
            "/auth/refresh",
            401,
            "invalid_refresh_token",
            _json({"refresh_token": fresh["refresh_token"]}),
            JSON,
            auth=None,
            writes={"audit_events": 1},
        ),
        Bad(
            "the newer access token after reuse",
            "GET",
            "/auth/me",
            401,
            "invalid_token",
            auth=fresh["access_token"],
        ),
    ]
    await run_cases(server, world, cases)


async def test_a_revoked_service_token_is_401(server: InProcessServer, world: World) -> None:
    listed = await server.client.get(
        f"/api/v1/environments/{world.env}/tokens", headers=bearer(world.access)
    )
    (token_id,) = [t["id"] for t in listed.json()["data"]["items"]]
    revoked = await server.client.delete(
        f"/api/v1/environments/{world.env}/tokens/{token_id}", headers=bearer(world.access)
    )
    assert revoked.status_code == 200
    cases = [
        Bad(
            "revoked service token",
            "GET",
            f"/environments/{world.env}/secrets",
            401,
            "invalid_token",
            auth="service",
        ),
        Bad(
            "revoked service token, commit",
            "POST",
            f"/environments/{world.env}/secrets/versions",
            401,
            "invalid_token",
            _json({"message": "m", "set": {"X": "1"}}),
            JSON,
            auth="service",
        ),
    ]
    await run_cases(server, world, cases)
