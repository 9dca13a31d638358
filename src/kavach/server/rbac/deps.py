"""`Requirement`: the one place a route declares the action it needs, checked per request."""

from __future__ import annotations

import inspect
import uuid
from typing import Annotated, Literal

from fastapi import Path, Query, Request

from kavach.server.access import LABELS, Access, ResourceKind
from kavach.server.deps import PrincipalDep, SessionDep, bearer_token, runtime_of
from kavach.server.errors import NotFound, ValidationFailed
from kavach.server.gate import Admission, Ticket
from kavach.server.iam import names as named

__all__ = ["Access", "Admit", "Admitted", "Requirement", "ResourceKind"]


class Requirement:
    """A route's declared action, and the resource (from path, query or body) it applies to.

    With `names`, the resource is named instead of given by id: the path parameters holding
    its organization's name and, below it, its secret group's and its own, outermost first.
    """

    def __init__(
        self,
        action: str,
        resource: ResourceKind | None = None,
        *,
        param: str = "id",
        source: Literal["path", "query", "body"] = "path",
        names: tuple[str, ...] = (),
        cached: bool = False,
    ) -> None:
        if cached and (resource != "environment" or source != "path"):
            raise ValueError("only checks on an environment named in the path are cached")
        self.action = action
        # A cached check hands the route no resource object (Access.resource is None).
        self.cached = cached
        self.resource = resource
        self.param = param
        self.source = source
        self.names = names
        # FastAPI reads a dependency's parameters from its signature: declare the one this
        # requirement reads, so the API description names it.
        self.__signature__ = self._signature()

    def _signature(self) -> inspect.Signature:
        call = inspect.signature(type(self).__call__, eval_str=True)
        params = [
            p
            for p in list(call.parameters.values())[1:]  # without self
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        if self.resource is not None and self.names:
            params += [
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str, Path()]
                )
                for name in self.names
            ]
        elif self.resource is not None and self.source != "body":
            where = Path if self.source == "path" else Query
            # Not a UUID type: a malformed id in a path is a 404, like an unknown one.
            declared = Annotated[str, where(json_schema_extra={"format": "uuid"})]
            params.append(
                inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, annotation=declared)
            )
        return call.replace(parameters=params)

    def __repr__(self) -> str:
        return f"Requirement({self.action!r}, {self.resource!r})"

    async def _resource_id(self, request: Request) -> uuid.UUID:
        if self.source == "path":
            raw = request.path_params.get(self.param)
        elif self.source == "query":
            raw = request.query_params.get(self.param)
        else:
            try:
                body = await request.json()
            except ValueError:
                raise ValidationFailed("the request body is not valid JSON") from None
            raw = body.get(self.param) if isinstance(body, dict) else None
        if raw is None:
            raise ValidationFailed(f"{self.param} is required")
        try:
            return uuid.UUID(str(raw))
        except ValueError:
            if self.source == "path":
                raise NotFound(f"{LABELS[self.resource or 'organization']} not found") from None
            raise ValidationFailed(f"{self.param} must be an id") from None

    async def __call__(
        self,
        request: Request,
        principal: PrincipalDep,
        session: SessionDep,
        **_declared: str,
    ) -> Access:
        """Check the action for this request at the gate; the route receives what it may act on."""
        gate = runtime_of(request).gate
        state = request.scope.setdefault("state", {})
        await gate.count(state, principal)  # refused or not, the request counts
        if self.resource is None:
            return await gate.admit(session, principal, state, action=self.action)
        if self.names:
            path = [request.path_params[name] for name in self.names]
            found = await named.find(session, self.resource, path)
            if found is None:
                # As for a resource the caller may not see: nothing tells the two apart.
                raise NotFound(f"{LABELS[self.resource]} not found")
            resource_id = found
        else:
            resource_id = await self._resource_id(request)
        return await gate.admit(
            session,
            principal,
            state,
            action=self.action,
            kind=self.resource,
            resource_id=resource_id,
            cached=self.cached,
        )


def environment_of(raw: str | None) -> uuid.UUID | None:
    """Return the environment id of a path, or None when it is not an id (a 404)."""
    try:
        return uuid.UUID(raw) if raw is not None else None
    except ValueError:
        return None


Admit = tuple[Ticket, Admission]


class Admitted:
    """A hot route's one dependency: its action on the path's environment, asked of the gate.

    Like Requirement, it runs before FastAPI validates the route's input (a 401 comes
    first). Its admission may be provisional: the use case confirms it against the epoch
    read with the data.
    """

    resource: ResourceKind = "environment"
    cached = True

    def __init__(self, action: str) -> None:
        self.action = action

    def __repr__(self) -> str:
        return f"Admitted({self.action!r})"

    async def __call__(self, request: Request) -> Admit:
        """Ask the gate; return the question and its answer for the use case."""
        ticket = ticket_for(request, self.action, environment_of(request.path_params.get("id")))
        return ticket, await runtime_of(request).gate.admit_provisionally(ticket)


def ticket_for(request: Request, action: str, environment_id: uuid.UUID | None) -> Ticket:
    """Return what a request asks the gate about an environment: its credential, its state."""
    return Ticket(
        token=bearer_token(request),
        action=action,
        environment_id=environment_id,
        state=request.scope.setdefault("state", {}),
    )
