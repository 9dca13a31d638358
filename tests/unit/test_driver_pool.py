"""The driver's pool connects where the engine does, with only what libpq's URLs mean."""

from __future__ import annotations

from pathlib import Path

from kavach.server.db.driver import DriverPool
from tests.conftest import make_settings


def test_the_pool_keeps_ssl_options_and_drops_engine_options(tmp_path: Path) -> None:
    url = (
        "postgresql+asyncpg://kavach:s3cret@db.internal:6432/kavach"
        "?sslmode=require&prepared_statement_cache_size=0"
    )
    pool = DriverPool(make_settings(tmp_path, url))
    assert pool._dsn == "postgresql://kavach:s3cret@db.internal:6432/kavach?sslmode=require"
