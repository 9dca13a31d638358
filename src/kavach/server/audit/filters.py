"""Which of a scope's events a listing shows: by who acted, what they did, and when.

The API's query and the dashboard's form are both read into `EventFilter`, so both accept
and refuse the same input and narrow the listing the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator
from sqlalchemy import ColumnElement, and_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.models import AuditEvent
from kavach.server.iam.models import User
from kavach.server.text_rules import worded

# What the events record: dotted names (secret.read, member.invite.accept). A trailing
# dot asks for every action under it.
ACTION_FILTER = worded(
    r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$",
    "must be an action such as secret.read, or its start ending in '.' such as secret.",
)
# Logins, token names and the command line's "cli:NAME": any text but control characters
# (PostgreSQL text cannot hold NUL).
ACTOR_FILTER = worded(r"^[^\x00-\x1f\x7f]*$", "must not contain control characters")


# A time as the filter takes it: ISO 8601, a date alone meaning its midnight, no zone UTC.
# Described as text: `date-time` (RFC 3339) would call a date alone, or no zone, invalid.
Moment = Annotated[
    datetime | None,
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]}),
]


class EventFilter(BaseModel):
    """Who, what and when: each given one narrows the listing; none given shows everything."""

    model_config = ConfigDict(frozen=True)

    actor: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=255,
            pattern=ACTOR_FILTER,
            description="Who acted: a user's login (all their events, under any login they "
            "had), or any other actor as the events name it (a service token's name, say).",
        ),
    ] = None
    action: Annotated[
        str | None,
        Field(
            max_length=64,
            pattern=ACTION_FILTER,
            description="An action (`secret.read`), or its start ending in a dot (`secret.`).",
        ),
    ] = None
    since: Annotated[
        Moment,
        Field(description="Events at or after this time (ISO 8601; without a zone, UTC)."),
    ] = None
    before: Annotated[
        Moment,
        Field(description="Events before this time (ISO 8601; without a zone, UTC)."),
    ] = None

    @field_validator("since", "before")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Read a time without a zone as UTC, and any other in UTC."""
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of the range of dates") from None

    @field_validator("before")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """Refuse an empty range (`since` is checked first: fields are, in their order)."""
        since = info.data.get("since")
        if value is not None and since is not None and value <= since:
            raise ValueError("must be later than since")
        return value

    @property
    def narrows(self) -> bool:
        """Say whether any filter is given."""
        return any(v is not None for v in (self.actor, self.action, self.since, self.before))

    async def condition(self, session: AsyncSession) -> ColumnElement[bool]:
        """Match the events this filter shows (with no filter, every event)."""
        parts: list[ColumnElement[bool]] = []
        if self.actor is not None:
            # A login names its user: their events, under whatever label each recorded (the
            # indexed id, too). Another name is matched as the events recorded their actor:
            # a service token, the command line, a user since deleted.
            user = await session.scalar(select(User.id).where(User.login == self.actor))
            by_label = AuditEvent.actor_label == self.actor
            parts.append(by_label if user is None else AuditEvent.actor_id == user)
        if self.action is not None:
            if self.action.endswith("."):
                parts.append(AuditEvent.action.startswith(self.action, autoescape=True))
            else:
                parts.append(AuditEvent.action == self.action)
        if self.since is not None:
            parts.append(AuditEvent.occurred_at >= self.since)
        if self.before is not None:
            parts.append(AuditEvent.occurred_at < self.before)
        return and_(*parts) if parts else true()
