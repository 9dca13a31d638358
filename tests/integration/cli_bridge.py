"""Run the real `kavach` CLI in-process against the in-process server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import InProcessServer

if TYPE_CHECKING:
    from tests.integration.test_resources import Api


class LoopBridge(httpx.BaseTransport):
    """Carry the CLI's synchronous requests to the in-process server on the test's loop."""

    def __init__(self, server: InProcessServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        skip = {"host", "content-length"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        call = self.server.client.request(
            request.method,
            request.url.path,
            params=request.url.params,
            headers=headers,
            content=request.read(),
        )
        answer = asyncio.run_coroutine_threadsafe(call, self.loop).result(timeout=60)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


async def run_cli(*args: str, runtime: Any = None) -> Result:
    """Run the CLI in a thread (it blocks; the server under test needs this loop)."""
    from kavach.cli.main import app as cli

    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), obj=runtime)


class Recorder(LoopBridge):
    """The bridge to the in-process server, noting each request's method and path."""

    def __init__(self, server: InProcessServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(server, loop)
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path.removeprefix("/api/v1")))
        return super().handle_request(request)


async def run_cli_as(
    api: Api, home: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Result, list[tuple[str, str]]]:
    """Run `kavach ARGS` signed in as `api`'s user; return its result and the requests sent."""
    from kavach.cli.app import Runtime

    monkeypatch.setenv("KAVACH_HOME", str(home))
    monkeypatch.setenv("KAVACH_SERVER", "http://127.0.0.1:8080")
    monkeypatch.setenv("KAVACH_TOKEN", api.headers["Authorization"].removeprefix("Bearer "))
    monkeypatch.setenv("COLUMNS", "200")
    bridge = Recorder(api.server, asyncio.get_running_loop())
    result = await run_cli(*args, runtime=Runtime(transport=bridge))
    return result, bridge.sent
