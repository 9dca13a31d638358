"""Audit events about an environment's secrets: who read or changed what; never values."""

from __future__ import annotations

import dataclasses
from typing import Any

from kavach.server.access import Access, RequestOrigin
from kavach.server.audit.scope import EventScope
from kavach.server.audit.service import NewEvent
from kavach.server.errors import KavachError
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.schemas import CommitRequest


def environment_event(
    access: Access, origin: RequestOrigin, action: str, details: dict[str, Any]
) -> NewEvent:
    """Describe an event on this environment, placed from the access check (no query)."""
    scope = access.scope
    assert scope is not None  # noqa: S101 - environment routes always carry their scope
    return NewEvent(
        actor=access.principal.actor,
        action=action,
        where=EventScope(scope.organization_id, scope.secret_group_id, scope.environment_id),
        origin=origin,
        resource_type="environment",
        resource_id=str(access.environment_id),
        details=details,
    )


def read_event(
    access: Access,
    origin: RequestOrigin,
    version_id: str | None,
    what: str,
    *,
    failure: KavachError | None = None,
) -> NewEvent:
    """Describe a read of secret values: who, where, which version; failed if it did."""
    details = {"version_id": version_id, "what": what}
    event = environment_event(access, origin, "secret.read", details)
    if failure is None:
        return event
    details["error"] = failure.error_code
    return dataclasses.replace(event, outcome="failure")


def commit_event(
    access: Access,
    origin: RequestOrigin,
    version: SecretVersion,
    request: CommitRequest,
    broken: list[str] | None = None,
) -> NewEvent:
    """Describe a commit: the new version, the names it set or unset, what it left broken."""
    details = {
        "version_id": version.id,
        "seq": version.seq,
        "set": sorted(request.set),
        "unset": sorted(request.unset),
        "replace": request.replace,
        "secret_count": version.secret_count,
    }
    if broken:  # references to what a forced commit removed
        details["broken_references"] = broken
    return environment_event(access, origin, "secret.commit", details)
