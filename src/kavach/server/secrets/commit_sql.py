"""The lean commit's two statements (PostgreSQL), written in SQLAlchemy for the driver."""

from __future__ import annotations

from sqlalchemy import LargeBinary, Text, Uuid, bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from kavach.server.audit.chain import COLUMNS as EVENT_COLUMNS
from kavach.server.audit.models import AuditEvent
from kavach.server.db.driver import DriverStatement
from kavach.server.secrets import service
from kavach.server.secrets.models import SecretVersion

# The environment's lock and its latest secrets, the audit chain's lock and head, and the
# access epoch, all read after the locks are granted (migration 0008).
LOCK_FOR_COMMIT = DriverStatement.compile(
    text("SELECT * FROM kavach_lock_for_commit(:environment_id, :chain)")
)


def _write_version() -> DriverStatement:
    """The new version, its secrets (given as arrays) and its audit event, in one statement.

    A version id that is taken fails the statement (pk_secret_versions): the batch is then
    written again under new ids.
    """
    version = (
        insert(SecretVersion)
        .values(service.VERSION_VALUES)
        .returning(SecretVersion.id)
        .cte("new_version")
    )
    given = (
        func.unnest(
            bindparam("names", type_=ARRAY(Text)),
            bindparam("data_key_ids", type_=ARRAY(Uuid)),
            bindparam("ciphertexts", type_=ARRAY(LargeBinary)),
        )
        .table_valued("name", "data_key_id", "value_encrypted")
        .render_derived()
    )
    secrets = insert(service.SECRETS_TABLE).from_select(
        ["version_id", "name", "data_key_id", "value_encrypted"],
        select(version.c.id, given.c.name, given.c.data_key_id, given.c.value_encrypted),
    )
    table = AuditEvent.__table__.c
    event_values = [bindparam(f"event_{name}", type_=table[name].type) for name in EVENT_COLUMNS]
    event = insert(AuditEvent).from_select(
        EVENT_COLUMNS, select(*event_values).select_from(version)
    )
    statement = select(version.c.id).add_cte(secrets.cte("new_secrets"))
    return DriverStatement.compile(statement.add_cte(event.cte("new_event")))


WRITE_VERSION = _write_version()
