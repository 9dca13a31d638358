"""Administration done on this machine against the server's database (no HTTP)."""

from __future__ import annotations

import asyncio
import getpass

from kavach.server.audit.service import Actor, RequestOrigin
from kavach.server.auth import flows
from kavach.server.db.engine import create_engine, create_sessionmaker, describe_database
from kavach.server.db.migrate import MigrationState, migrate, migrate_blocking
from kavach.server.settings import Settings, check_startable, get_settings


def _local_actor() -> Actor:
    return Actor(type="system", label=f"cli:{getpass.getuser()}")


def run_migrations(settings: Settings | None = None) -> tuple[str, MigrationState]:
    """Migrate the configured database to head; return its description and state."""
    settings = settings or get_settings()
    return describe_database(settings), migrate_blocking(settings)


def decide_login(user_code: str, *, approve: bool, login: str | None) -> str:
    """Approve or deny a pending device login from the server's own machine."""
    settings = get_settings()
    check_startable(settings)

    async def _run() -> str:
        engine = create_engine(settings)
        try:
            await migrate(engine, settings)
            async with create_sessionmaker(engine)() as session, session.begin():
                return await flows.decide_device_authorization(
                    session,
                    user_code=user_code,
                    approve=approve,
                    login=login,
                    actor=_local_actor(),
                    origin=RequestOrigin(client_address="local"),
                )
        finally:
            await engine.dispose()

    return asyncio.run(_run())
