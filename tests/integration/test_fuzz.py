"""Property-based fuzzing of every operation in the API description, in-process.

Schemathesis generates valid and invalid requests from /api/v1/openapi.json; they are sent
as a signed-in user who owns an organization, secret group, environment, versions, a service
token and a user group, so path ids reach real resources as well as random ones. Every
response must: not be a 5xx, match the status codes and schema the description declares,
and (under /api/v1) be the envelope.

Budget, per operation: KAVACH_FUZZ_EXAMPLES (default 8) valid and as many invalid requests
aimed at real resources, and a quarter of that fully generated (all of it for operations
with nothing to aim at). PostgreSQL gets a third of the budget: the same code runs there,
more slowly, and what only PostgreSQL refuses (NUL in text) turns up within it. Runs are
derandomized so CI is repeatable; to explore, raise the budget and set KAVACH_FUZZ_SEED.
(The default is what fits CI's time now that the API has grown; it was 15, then 10.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi import checks as openapi_checks

from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]
EXAMPLES = int(os.environ.get("KAVACH_FUZZ_EXAMPLES", "8"))
# Unset: the same examples every run (CI). Set: a fresh exploration from that seed.
SEED = os.environ.get("KAVACH_FUZZ_SEED")
ENVELOPE_KEYS = {"success", "data", "error", "error_code"}
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture
def auth_overrides() -> dict[str, object]:
    """Thousands of requests from one session: lift the per-token API limit."""
    return {"rate_limit_api": "1000000/minute"}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """A generated feed request that asks for the current revision waits a moment, not 60 s."""
    return {"changes_max_wait": 0.2}


@pytest.fixture
def no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection or name lookup beyond this machine (providers call clouds)."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK:
            raise OSError(f"fuzzing may not reach {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OSError(f"fuzzing may not reach {address[0]!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@dataclass
class World:
    """A signed-in user and the resources they own."""

    token: str
    ids: dict[str, str] = field(default_factory=dict)


async def build_world(server: InProcessServer) -> World:
    """Log alice in and give her a tree with versions, a service token and a user group."""
    world = World(token=(await login(server, "alice"))["access_token"])
    await login(server, "bob")  # a second user to grant roles to and add to groups

    async def call(method: str, path: str, body: object = None) -> Any:
        response = await server.client.request(
            method, f"/api/v1{path}", json=body, headers=bearer(world.token)
        )
        assert response.status_code < 300, (method, path, response.text)
        return response.json()["data"]

    # Organization names are unique: each rebuild needs a new one.
    org = await call("POST", "/organizations/", {"name": f"acme-{secrets.token_hex(4)}"})
    group = await call("POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"})
    env = await call("POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"})
    secrets_path = f"/environments/{env['id']}/secrets/versions"
    await call("POST", secrets_path, {"message": "one", "set": {"DB_URL": "postgres://x"}})
    version = await call("POST", secrets_path, {"message": "two", "set": {"API_KEY": "k\x00y"}})
    token = await call(
        "POST", f"/environments/{env['id']}/tokens", {"name": "ci", "role": "viewer"}
    )
    user_group = await call("POST", "/user-groups/", {"name": "devs", "organization_id": org["id"]})
    await call("POST", f"/user-groups/{user_group['id']}/members", {"user": "bob"})
    await call("POST", f"/environments/{env['id']}/members", {"user": "bob", "role": "viewer"})
    world.ids = {
        "organization": org["id"],
        "org_name": org["name"],
        "secret_group": group["id"],
        "environment": env["id"],
        "version": version["id"],
        "token": token["id"],
        "user_group": user_group["id"],
    }
    return world


def real_parameters(operation: Operation, world: World) -> dict[str, dict[str, str]]:
    """Return path (and query) values that name the world's resources for this operation."""
    path = operation.path
    ids = world.ids
    kinds = {
        "/api/v1/organizations/by-name/": {"name": ids["org_name"], "group": "web", "env": "prod"},
        "/api/v1/organizations/": {"id": ids["organization"]},
        "/api/v1/secret-groups/": {"id": ids["secret_group"]},
        "/api/v1/environments/": {"id": ids["environment"]},
        "/api/v1/user-groups/{id}": {"id": ids["user_group"]},
    }
    path_values: dict[str, str] = next(
        (values for prefix, values in kinds.items() if path.startswith(prefix)), {}
    )
    path_values = {
        **path_values,
        "version_id": ids["version"],
        "token_id": ids["token"],
        "name": path_values.get("name", "DB_URL"),
        "provider": "github",
    }
    declared_path = {p.name for p in operation.path_parameters}
    declared_query = {p.name for p in operation.query}
    result = {"path": {k: v for k, v in path_values.items() if k in declared_path}}
    if "organization_id" in declared_query:
        result["query"] = {"organization_id": ids["organization"]}
    return result


def _negatable(parameter: Any) -> bool:
    """Say whether some value of a parameter breaks its schema (any string fits a plain one)."""
    schema = parameter.definition.get("schema", {})
    return schema.get("type") != "string" or bool(set(schema) - {"type", "title", "description"})


def _can_be_invalid(operation: Operation, fixed: set[str]) -> bool:
    parameters = [*operation.path_parameters, *operation.query]
    return bool(operation.body) or any(_negatable(p) for p in parameters if p.name not in fixed)


def strategies_for(
    operation: Operation, world: World, examples: int
) -> list[tuple[str, st.SearchStrategy[AnyCase], int]]:
    """Return (name, strategy, budget): mostly aimed at real resources, some fully random."""
    real = real_parameters(operation, world)
    fixed = {*real["path"], *real.get("query", {})}
    # Fixed, so that it is neither generated nor made invalid: every case is signed in.
    headers = bearer(world.token)
    path, query = real["path"] or None, real.get("query")
    plans: list[tuple[str, st.SearchStrategy[AnyCase], int]] = []
    share = examples
    if fixed:
        positive = operation.as_strategy(
            GenerationMode.POSITIVE, headers=headers, path_parameters=path, query=query
        )
        plans.append(("real ids, valid", positive, examples))
        if _can_be_invalid(operation, fixed):
            negative = operation.as_strategy(
                GenerationMode.NEGATIVE, headers=headers, path_parameters=path, query=query
            )
            plans.append(("real ids, invalid", negative, examples))
        share = max(1, examples // 4)
    plans.append(("valid", operation.as_strategy(GenerationMode.POSITIVE, headers=headers), share))
    if _can_be_invalid(operation, set()):
        negative = operation.as_strategy(GenerationMode.NEGATIVE, headers=headers)
        plans.append(("invalid", negative, share))
    return plans


def check_envelope(_ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every /api/v1 response is `{success, data, error, error_code}` with a stable code."""
    if not case.path.startswith("/api/v1") or case.path.endswith("/openapi.json"):
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == ENVELOPE_KEYS, f"not the envelope: {body!r}"
    if response.status_code >= 400:
        assert body["success"] is False, body
        assert isinstance(body["error"], str) and body["error"], body
        assert isinstance(body["error_code"], str), body
        assert ERROR_CODE.match(body["error_code"]), body
    else:
        assert body["success"] is True and body["error_code"] is None, body
    return True


CHECKS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    check_envelope,
]


@dataclass
class Tally:
    """What the fuzzer sent and what came back."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _httpx_arguments(case: AnyCase) -> dict[str, Any]:
    kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1:8080")
    arguments: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params"),
    }
    if "json" in kwargs:
        arguments["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        arguments["content"] = kwargs["data"]
    return arguments


def fuzz_operation(
    operation: Operation,
    plan: str,
    strategy: st.SearchStrategy[AnyCase],
    send: Callable[[dict[str, Any]], httpx.Response],
    tally: Tally,
    examples: int,
) -> None:
    """Run one operation's examples (in a worker thread: Hypothesis is synchronous)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @seed(int(SEED or 0))
    @given(case=strategy)
    def run(case: AnyCase) -> None:
        response = send(_httpx_arguments(case))
        tally.cases += 1
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors.append(
                f"{operation.label} -> {response.status_code}: {case.as_curl_command()[:500]}"
            )
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # report every operation's problems
        detail = str(error)
        if isinstance(error, BaseExceptionGroup):
            detail = "\n".join(str(e) for e in error.exceptions)
        tally.failures.append(
            f"{operation.label} ({plan}): {type(error).__name__}: {detail[:3000]}"
        )


def _destructive(operation: Operation) -> bool:
    return operation.method.upper() == "DELETE" or operation.path.endswith("/logout")


def _operations(schema: Any) -> Iterator[Operation]:
    for result in schema.get_all_operations():
        yield result.ok()


@pytest.mark.usefixtures("no_outside_network")
async def test_fuzz_every_operation(server: InProcessServer, backend: str) -> None:
    started = time.perf_counter()
    examples = EXAMPLES if backend == "sqlite" else max(2, EXAMPLES // 3)
    description = (await server.client.get("/api/v1/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(description)
    operations = sorted(_operations(schema), key=_destructive)
    loop = asyncio.get_running_loop()
    # An app exception must come back as the 500 a real server would answer, to be counted.
    transport = httpx.ASGITransport(
        app=server.app, raise_app_exceptions=False, client=("127.0.0.1", 50000)
    )
    tally = Tally()
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:

        def send(arguments: dict[str, Any]) -> httpx.Response:
            future = asyncio.run_coroutine_threadsafe(client.request(**arguments), loop)
            return future.result(timeout=60)

        world = await build_world(server)
        for operation in operations:
            if _destructive(operation):
                world = await build_world(server)  # each destroyer gets whole resources
            for name, strategy, budget in strategies_for(operation, world, examples):
                await asyncio.to_thread(
                    fuzz_operation, operation, name, strategy, send, tally, budget
                )
    seconds = time.perf_counter() - started
    statuses = dict(sorted(tally.statuses.items()))
    print(  # the figures are the point of this test's output
        f"\nfuzz[{backend}]: {len(operations)} operations, {tally.cases} cases, "
        f"{len(tally.server_errors)} 5xx, {seconds:.1f}s; statuses {statuses}"
    )
    assert not tally.server_errors, "\n".join(tally.server_errors)
    assert not tally.failures, "\n\n".join(tally.failures)
