"""What a delivery sends: an event in Kavach's JSON, or a Slack-compatible summary line.

Built from the audit event, whose details never hold a secret value (a commit names the
keys it set or unset at most).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from kavach.server.audit.models import AuditEvent
from kavach.server.webhooks.schemas import EVENT_TYPES, PING


@dataclass(frozen=True)
class Place:
    """Where an event happened: each level's id and name (None where it has none)."""

    organization: tuple[uuid.UUID, str | None]
    secret_group: tuple[uuid.UUID, str | None] | None = None
    environment: tuple[uuid.UUID, str | None] | None = None

    def path(self) -> str:
        """Return `org/group/env` as far down as the event happened."""
        levels = [self.organization, self.secret_group, self.environment]
        return "/".join(str(name or node_id) for node_id, name in filter(None, levels))


@dataclass(frozen=True)
class Event:
    """What a webhook is told: the type, when, where, who, and the event's details."""

    type: str
    occurred_at: datetime
    place: Place
    actor: str | None
    details: dict[str, Any]
    audit_event_id: int | None = None


def event_type(event: AuditEvent) -> str | None:
    """Return the webhook event an audit event is, or None if webhooks are not told of it."""
    if event.action not in EVENT_TYPES:
        return None
    if event.action == "secret.sync":
        # A plan (dry run) changes nothing; a run that finished or failed is news.
        return None if (event.details or {}).get("dry_run") else event.action
    return event.action if event.outcome == "success" else None


def _node(node: tuple[uuid.UUID, str | None] | None) -> dict[str, Any] | None:
    return None if node is None else {"id": str(node[0]), "name": node[1]}


def kavach_body(delivery_id: uuid.UUID, event: Event) -> dict[str, Any]:
    """Return the event as Kavach's own JSON."""
    return {
        "id": str(delivery_id),
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "organization": _node(event.place.organization),
        "secret_group": _node(event.place.secret_group),
        "environment": _node(event.place.environment),
        "actor": event.actor,
        "audit_event_id": event.audit_event_id,
        "details": event.details,
    }


def _subject(details: dict[str, Any]) -> str:
    if details.get("user"):
        return str(details["user"])
    return f"user group {details.get('user_group')}"


def _names(details: dict[str, Any], key: str) -> int:
    found = details.get(key)
    return len(found) if isinstance(found, list) else 0


def summary(event: Event) -> str:
    """Return one line that says what happened, for a chat channel."""
    where, who, details = event.place.path(), event.actor or "someone", event.details
    if event.type == "secret.commit":
        changed = f"{_names(details, 'set')} set, {_names(details, 'unset')} unset"
        return f"{where}: {who} committed version {details.get('seq')} ({changed})"
    if event.type == "secret.rollback":
        return f"{where}: {who} rolled back to version {details.get('rollback_of')}"
    if event.type == "secret.sync":
        status = details.get("status") or "failed"
        return f"{where}: sync to {details.get('provider')} by {who}: {status}"
    if event.type == "member.grant":
        return f"{where}: {who} granted {details.get('role')} to {_subject(details)}"
    if event.type == "member.revoke":
        return f"{where}: {who} revoked {details.get('role')} from {_subject(details)}"
    if event.type == PING:
        return f"{where}: a test of this webhook by {who}"
    return f"{where}: {event.type} by {who}"


def _slack_text(line: str) -> str:
    """Escape what Slack reads as markup (links, mentions) in a line of plain text."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(delivery_id: uuid.UUID, event: Event, fmt: str) -> str:
    """Return the JSON a delivery sends, in the webhook's format."""
    if fmt == "slack":
        data: dict[str, Any] = {"text": _slack_text(f"[Kavach] {summary(event)}")}
    else:
        data = kavach_body(delivery_id, event)
    return orjson.dumps(data).decode()
