"""Verify every audit chain straight from the database, on the server's machine (no HTTP)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from kavach.server.audit import chain as audit_chain
from kavach.server.audit import integrity
from kavach.server.audit.chain import SERVER_CHAIN, Break, ChainReport
from kavach.server.audit.models import AuditEvent
from kavach.server.crypto.keys import load_keys
from kavach.server.db.engine import create_engine, create_sessionmaker
from kavach.server.settings import Settings, get_settings


async def _verify(settings: Settings) -> list[ChainReport]:
    keys = load_keys(settings)
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        audit_chain.attach(sessions, audit_chain.AuditKey.derive(keys))
        async with sessions() as session, session.begin():
            found = await session.scalars(select(AuditEvent.chain).distinct())
            names = {name for name in found if name is not None}
            reports = []
            for name in sorted(names | {SERVER_CHAIN}, key=lambda n: (n != SERVER_CHAIN, n)):
                try:
                    org_id = None if name == SERVER_CHAIN else uuid.UUID(name)
                except ValueError:
                    broken = Break(None, None, "unknown_chain", f"no such chain {name!r}")
                    reports.append(ChainReport(chain=name, broken=broken))
                    continue
                reports.append(await integrity.verify_chain(session, organization_id=org_id))
            return reports
    finally:
        await engine.dispose()


def verify_all(settings: Settings | None = None) -> list[ChainReport]:
    """Check the server-wide chain and every organization's (deleted ones too)."""
    return asyncio.run(_verify(settings or get_settings()))
