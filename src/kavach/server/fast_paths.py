"""Lean paths served ahead of routing: the hottest routes skip the framework's inner layers.

A route declared with `api.with_fast_path` keeps its normal declaration (the OpenAPI
description and the general path are unchanged). This middleware sits inside the request
context and security layers, matches such routes itself, and tries the lean path before
the exception, routing and dependency layers run. An answer is sent as is; a refusal the
lean path raises goes through the app's own exception handlers; None passes the request on
to the general path, with the body replayed if the lean path read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kavach.server.api import ApiRoute, StrictJSONRequest
from kavach.server.errors import KavachError

Handlers = Mapping[Any, Any]  # what FastAPI keeps in app.exception_handlers


def lean_routes(routes: Iterable[BaseRoute]) -> list[ApiRoute]:
    """Return the routes that declare a lean path."""
    return [r for r in routes if isinstance(r, ApiRoute) and type(r).fast_path is not None]


class FastPaths:
    """Try the lean paths of `routes` before the rest of the app."""

    def __init__(self, app: ASGIApp, *, routes: list[ApiRoute], handlers: Handlers) -> None:
        self.app = app
        self.routes = routes
        self.handlers = handlers  # the app's, filled in when its handlers are installed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Query strings and NUL characters are left to the general path, which checks them.
        if scope["type"] != "http" or scope["query_string"] or "\x00" in scope["path"]:
            await self.app(scope, receive, send)
            return
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                break
        else:
            await self.app(scope, receive, send)
            return
        scope.update(child_scope)  # the route and its path parameters, as routing sets them
        request = StrictJSONRequest(scope, receive)
        fast_path = type(route).fast_path
        assert fast_path is not None  # noqa: S101 - lean_routes chose it for this
        try:
            answer = await fast_path(request)
        except (KavachError, HTTPException) as refusal:
            answer = await self._handled(request, refusal)
        if answer is None:
            await self.app(scope, _replaying(request, receive), send)
        else:
            await answer(scope, receive, send)

    async def _handled(self, request: Request, error: Exception) -> Response:
        """Answer a refusal with the handler the app's exception layer would have used."""
        for kind in type(error).__mro__:
            if kind in self.handlers:
                response: Response = await self.handlers[kind](request, error)
                return response
        raise error


def _replaying(request: Request, receive: Receive) -> Receive:
    """Return a receive that hands the general path the body the lean path already read."""
    body: bytes | None = getattr(request, "_body", None)
    if body is None:
        return receive
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
