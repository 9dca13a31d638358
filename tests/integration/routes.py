"""Enumerate the app's routes and the action each declares."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from kavach.server.rbac.deps import Admitted, Requirement

# What a route declares it needs of the gate: a Requirement, or a hot route's Admitted.
Declared = Requirement | Admitted


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[BaseRoute]:
    for route in routes:
        nested = getattr(route, "original_router", None)  # an included router
        if nested is not None:
            # Its routes' paths lack the prefix of the router it was included in (/ui).
            context = getattr(route, "include_context", None)
            yield from _walk(nested.routes, prefix + getattr(context, "prefix", ""))
        elif prefix and isinstance(route, APIRoute):
            found = copy.copy(route)
            found.path = prefix + route.path
            yield found
        else:
            yield route


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Return every APIRoute of the app, included routers flattened."""
    return [route for route in _walk(app.routes) if isinstance(route, APIRoute)]


def _requirements(dependant: Dependant) -> Iterator[Declared]:
    if isinstance(dependant.call, Requirement | Admitted):
        yield dependant.call
    for child in dependant.dependencies:
        yield from _requirements(child)


def declared_action(route: APIRoute) -> Declared | None:
    """Return what a route declares it needs of the gate, if anything."""
    found = list(_requirements(route.dependant))
    assert len(found) <= 1, f"{route.path} declares more than one action"
    return found[0] if found else None


def route_key(route: APIRoute) -> str:
    """Name a route as METHOD PATH."""
    (method,) = route.methods or {"?"}
    return f"{method} {route.path}"
