"""Alembic environment: always run by kavach.server.db.migrate on a connection it provides."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from kavach.server.db.registry import metadata


def run_migrations(connection: Connection) -> None:
    """Run the migrations on the given connection."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run migrations with `kavach server migrate`")
run_migrations(_connection)
