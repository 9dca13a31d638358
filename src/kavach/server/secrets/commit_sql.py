"""The lean commit's statements (PostgreSQL), written in SQLAlchemy for the driver."""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary, Text, Uuid, bindparam, func, insert, select, text
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


# The commit's locks, and a check that the environment's latest version, the chain's head
# (unless expected_seq is None) and the access epoch are the expected ones; it fails the
# transaction with audit.service.NOT_AT_HEAD if not (migration 0009).
_CHECK = func.kavach_check_at_head(
    bindparam("environment_id", type_=Uuid),
    bindparam("expected_version", type_=Text),
    bindparam("chain", type_=Text),
    bindparam("expected_seq", type_=BigInteger),
    bindparam("expected_hash", type_=Text),
    bindparam("expected_epoch", type_=BigInteger),
)
CHECK_AT_HEAD = DriverStatement.compile(select(_CHECK))


def _write_version(*, checked: bool) -> DriverStatement:
    """The new version, its secrets (given as arrays) and its audit event, in one statement.

    Checked: only after kavach_check_at_head passes. A version id that is taken fails the
    statement (pk_secret_versions): the batch is then written again under new ids.
    """
    if checked:
        table = SecretVersion.__table__.c
        values = [bindparam(key, type_=table[key].type) for key in service.VERSION_KEYS]
        guard = select(_CHECK.label("passed")).cte("guard")
        written = insert(SecretVersion).from_select(
            service.VERSION_KEYS, select(*values).select_from(guard)
        )
    else:
        written = insert(SecretVersion).values(service.VERSION_VALUES)
    version = written.returning(SecretVersion.id).cte("new_version")
    given = (
        func.unnest(
            bindparam("names", type_=ARRAY(Text)),
            bindparam("ciphertexts", type_=ARRAY(LargeBinary)),
        )
        .table_valued("name", "value_encrypted")
        .render_derived()
    )
    secrets = insert(service.SECRETS_TABLE).from_select(
        ["version_id", "name", "value_encrypted"],
        select(version.c.id, given.c.name, given.c.value_encrypted),
    )
    table = AuditEvent.__table__.c
    event_values = [bindparam(f"event_{name}", type_=table[name].type) for name in EVENT_COLUMNS]
    event = insert(AuditEvent).from_select(
        EVENT_COLUMNS, select(*event_values).select_from(version)
    )
    statement = select(version.c.id).add_cte(secrets.cte("new_secrets"))
    return DriverStatement.compile(statement.add_cte(event.cte("new_event")))


WRITE_VERSION = _write_version(checked=False)  # under the locks of LOCK_FOR_COMMIT
WRITE_AT_HEAD = _write_version(checked=True)  # outside a transaction: a pipeline is one
