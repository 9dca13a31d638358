"""Run the real `kavach` CLI in-process against the in-process server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from tests.conftest import InProcessServer


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
