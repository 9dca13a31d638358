"""Liveness and detailed health: database reachable, pool, version, migrations."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from kavach import __version__
from kavach.server.db.migrate import migration_state
from kavach.server.deps import RuntimeDep
from kavach.server.logging import get_logger

router = APIRouter(tags=["health"])
log = get_logger(__name__)
_CHECK_TIMEOUT_SECONDS = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Say the process is alive (no dependencies checked)."""
    return {"status": "ok"}


def _pool_stats(runtime: RuntimeDep) -> dict[str, Any]:
    pool = runtime.engine.pool
    if isinstance(pool, QueuePool):
        return {
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "overflow": pool.overflow(),
            "idle": pool.checkedin(),
        }
    return {"type": type(pool).__name__}


@router.get("/healthz/detailed")
async def healthz_detailed(runtime: RuntimeDep) -> JSONResponse:
    """Check the database and migrations; 503 when unreachable or not migrated to head."""
    started = time.perf_counter()
    database: dict[str, Any] = {"dialect": runtime.engine.dialect.name}
    migrations: dict[str, Any] = {}
    healthy = True
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_SECONDS), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            state = await migration_state(conn)
        database["reachable"] = True
        migrations = {
            "current": list(state.current),
            "head": list(state.head),
            "at_head": state.at_head,
            # An older instance left running after a newer release migrated: not ready.
            "newer_than_code": state.newer_than_code,
        }
    except Exception as exc:  # any failure to reach the database means "degraded"
        healthy = False
        database["reachable"] = False
        database["error"] = type(exc).__name__
        log.warning("health_check_failed", error=type(exc).__name__)
    database["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    body = {
        "status": "ok" if healthy and migrations.get("at_head") else "degraded",
        "version": __version__,
        "database": database,
        "pool": _pool_stats(runtime),
        "migrations": migrations,
    }
    # Not ready until the schema matches this code: a load balancer should not send traffic.
    ready = healthy and bool(migrations.get("at_head"))
    return JSONResponse(body, status_code=200 if ready else 503)
