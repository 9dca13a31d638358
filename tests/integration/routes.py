"""Enumerate the app's routes and the action each declares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from kavach.server.rbac.deps import Requirement


def _walk(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        nested = getattr(route, "original_router", None)  # an included router
        if nested is not None:
            yield from _walk(nested.routes)
        else:
            yield route


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Return every APIRoute of the app, included routers flattened."""
    return [route for route in _walk(app.routes) if isinstance(route, APIRoute)]


def _requirements(dependant: Dependant) -> Iterator[Requirement]:
    if isinstance(dependant.call, Requirement):
        yield dependant.call
    for child in dependant.dependencies:
        yield from _requirements(child)


def declared_action(route: APIRoute) -> Requirement | None:
    """Return the Requirement a route declares, if any."""
    found = list(_requirements(route.dependant))
    assert len(found) <= 1, f"{route.path} declares more than one action"
    return found[0] if found else None


def route_key(route: APIRoute) -> str:
    """Name a route as METHOD PATH."""
    (method,) = route.methods or {"?"}
    return f"{method} {route.path}"
