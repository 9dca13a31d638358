"""The audit hash chain: each event's keyed hash covers its fields and the previous hash.

Every organization has its own chain; events outside any organization (logins, refreshes,
key rotation) form the `server` chain. An event's `hash` is HMAC-SHA-256, under a key
derived from the JWT signing key, over a canonical JSON of the event, its place
(chain, seq) and `prev_hash`, the hash of the event before it. Changing, removing or
reordering a stored event therefore breaks its chain at that point, and someone who can
only write to the database cannot compute hashes that would hide the change.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.audit.models import AuditEvent
from kavach.server.crypto.envelope import key_id
from kavach.server.crypto.keys import KeyMaterial

SERVER_CHAIN = "server"
GENESIS = "0" * 64  # the prev_hash of a chain's first event
_KDF_INFO = b"kavach audit chain v1"
_MAC_PREFIX = b"kavach-audit-event:v1\0"
_SESSION_INFO_KEY = "kavach.audit_key"
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS  # as json.dumps, keys become strings
COLUMNS = [column.key for column in AuditEvent.__table__.columns if column.key != "id"]


@dataclass(frozen=True, repr=False)
class AuditKey:
    """The key that hashes audit events; repr never shows it."""

    secret: bytes

    @classmethod
    def derive(cls, keys: KeyMaterial) -> AuditKey:
        """Derive the audit key from the JWT signing key (HKDF-SHA-256, its own label)."""
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO)
        return cls(kdf.derive(keys.jwt_signing_key))

    @cached_property
    def id(self) -> str:
        """Return a stable, non-secret id for the key."""
        return key_id(self.secret)

    def sign(self, event: Mapping[str, Any]) -> str:
        """Return the hash of an event (its columns by name): HMAC-SHA-256 of its canonical form."""
        return hmac.digest(self.secret, _MAC_PREFIX + canonical(event), "sha256").hex()

    def __repr__(self) -> str:
        return f"AuditKey(id={self.id})"


def attach(sessionmaker: async_sessionmaker[AsyncSession], key: AuditKey) -> None:
    """Give every session of a running server the audit key."""
    sessionmaker.configure(info={_SESSION_INFO_KEY: key})


def key_for(session: AsyncSession) -> AuditKey:
    """Return the audit key for this session's transaction."""
    found = session.info.get(_SESSION_INFO_KEY)
    if isinstance(found, AuditKey):
        return found
    # A session outside a running server (`kavach server …` on the server's machine):
    # the keys the server itself loads from the same settings.
    from kavach.server.crypto.keys import load_keys
    from kavach.server.settings import get_settings

    key = AuditKey.derive(load_keys(get_settings()))
    session.info[_SESSION_INFO_KEY] = key
    return key


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def timestamp(value: datetime) -> str:
    """Return the canonical text of a time: UTC, to the microsecond (what both databases keep)."""
    # isoformat, not strftime: the same text, at a fraction of the cost.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def normalized(details: dict[str, Any] | None) -> dict[str, Any]:
    """Return details as they read back from the database (tuples become lists, and so on)."""
    # orjson: the same JSON types back, at a fraction of the cost. Unlike json it writes
    # NaN as null and takes UUIDs and datetimes; details hold neither floats nor those.
    result: dict[str, Any] = orjson.loads(orjson.dumps(details or {}, option=_NON_STR_KEYS))
    return result


def canonical(event: Mapping[str, Any]) -> bytes:
    """Return the bytes an event's hash covers: every field, sorted, compact, ASCII."""
    body = {
        "v": 1,
        "chain": event["chain"],
        "seq": event["chain_seq"],
        "time": timestamp(event["occurred_at"]),
        "actor": {
            "type": event["actor_type"],
            "id": _text(event["actor_id"]),
            "label": event["actor_label"],
        },
        "action": event["action"],
        "resource": {"type": event["resource_type"], "id": event["resource_id"]},
        "scope": {
            "organization_id": _text(event["organization_id"]),
            "secret_group_id": _text(event["secret_group_id"]),
            "environment_id": _text(event["environment_id"]),
        },
        "outcome": event["outcome"],
        "address": event["client_address"],
        "request_id": event["request_id"],
        "details": event["details"],
        "key_id": event["key_id"],
        "prev": event["prev_hash"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def fields(event: AuditEvent) -> dict[str, Any]:
    """Return a stored event's columns by name, as `sign` takes them."""
    return {name: getattr(event, name) for name in COLUMNS}


@dataclass(frozen=True)
class Break:
    """The first place a chain does not hold, and why."""

    seq: int | None  # the event's place in its chain, when it has one
    event_id: int | None  # None when the event at `seq` is missing
    reason: str  # missing, relinked, modified, unknown_key, unchained
    message: str


@dataclass
class ChainReport:
    """What checking one chain found."""

    chain: str
    events: int = 0  # chained events checked before stopping
    legacy: int = 0  # events recorded before chaining existed (not covered)
    head_seq: int | None = None
    head_hash: str | None = None
    broken: Break | None = None

    @property
    def intact(self) -> bool:
        """Say whether every chained event was verified."""
        return self.broken is None


class Walk:
    """Check a chain's events one by one, in sequence order."""

    def __init__(self, key: AuditKey, report: ChainReport) -> None:
        self.key = key
        self.report = report
        self.expected = 1
        self.prev = GENESIS

    def _fail(self, seq: int, event_id: int | None, reason: str, message: str) -> bool:
        self.report.broken = Break(seq, event_id, reason, message)
        return False

    def step(self, event: AuditEvent) -> bool:
        """Check the next event; return False (with the break noted) when the chain fails."""
        seq, at = event.chain_seq, f"event #{event.chain_seq} (id {event.id})"
        if seq is None or seq < self.expected:
            return self._fail(self.expected, event.id, "relinked", f"id {event.id} is misplaced")
        if seq > self.expected:
            return self._fail(
                self.expected,
                None,
                "missing",
                f"event #{self.expected} is missing (deleted?); the next is {at}",
            )
        if event.prev_hash != self.prev:
            return self._fail(
                seq, event.id, "relinked", f"{at} does not follow #{seq - 1}: one was altered"
            )
        if event.key_id != self.key.id:
            return self._fail(
                seq,
                event.id,
                "unknown_key",
                f"{at} was hashed with audit key {event.key_id}, not this server's "
                f"{self.key.id} (was the JWT signing key changed?)",
            )
        stored = event.hash or ""
        if not hmac.compare_digest(self.key.sign(fields(event)), stored):
            return self._fail(seq, event.id, "modified", f"{at} was changed after it was recorded")
        self.report.events += 1
        self.report.head_seq, self.report.head_hash = seq, stored
        self.expected, self.prev = seq + 1, stored
        return True
