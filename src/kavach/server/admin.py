"""Administration done on this machine against the server's database (no HTTP)."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from kavach.server.access import Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth import approval
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.crypto.envelope import Keyring
from kavach.server.crypto.keys import (
    load_keys,
    retire_generated_secret_keys,
    rotate_generated_secret_key,
)
from kavach.server.db.engine import create_engine, create_sessionmaker, describe_database
from kavach.server.db.migrate import MigrationState, migrate, migrate_blocking
from kavach.server.errors import ConfigurationError
from kavach.server.secrets.models import DataKey
from kavach.server.settings import Settings, check_startable, get_settings

if TYPE_CHECKING:
    from kavach.server.backup.archive import Manifest


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
                return await approval.decide_as_operator(
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


def link_identity(login: str, *, provider: str, subject: str, remove: bool = False) -> str:
    """Link (or unlink) an OpenID provider's subject to an existing user; name the user."""
    from kavach.server.oidc import accounts

    settings = get_settings()
    check_startable(settings)
    found = settings.auth.oidc_provider(provider)
    if found is None:
        names = ", ".join(p.name for p in settings.auth.oidc_providers) or "none"
        raise ConfigurationError(f"no OpenID provider named {provider!r} (configured: {names})")

    async def _run() -> str:
        engine = create_engine(settings)
        try:
            await migrate(engine, settings)
            async with create_sessionmaker(engine)() as session, session.begin():
                change = accounts.unlink if remove else accounts.link
                await change(
                    session,
                    login=login,
                    provider=found,
                    subject=subject,
                    actor=_local_actor(),
                    origin=RequestOrigin(client_address="local"),
                )
                return login
        finally:
            await engine.dispose()

    return asyncio.run(_run())


def _with_runtime_keys(settings: Settings) -> tuple[SecretKeys, Keyring]:
    keys = load_keys(settings)
    keyring = keys.secret_keyring()
    return SecretKeys(keyring), keyring


async def _rewrap(settings: Settings) -> int:
    secret_keys, _ = _with_runtime_keys(settings)
    engine = create_engine(settings)
    try:
        await migrate(engine, settings)
        async with create_sessionmaker(engine)() as session, session.begin():
            count = await secret_keys.rewrap_all(session)
            await audit.record(
                session,
                actor=_local_actor(),
                action="keys.rewrap",
                origin=RequestOrigin(),
                details={"kek_id": secret_keys.keyring.active_id, "data_keys": count},
            )
            return count
    finally:
        await engine.dispose()


def rotate_secret_key() -> tuple[str, int]:
    """Activate a new KEK (generated keys only) and re-wrap every data key; return (id, count)."""
    settings = get_settings()
    check_startable(settings)
    if settings.keys.secret_encryption_key or settings.keys.secret_encryption_key_file:
        # Configured keys: the operator already set the new key; re-wrap under it.
        new_id = load_keys(settings).secret_keyring().active_id
    else:
        new_id = rotate_generated_secret_key(settings)
    return new_id, asyncio.run(_rewrap(settings))


def retire_secret_keys() -> tuple[list[str], list[str], bool]:
    """Drop old KEKs no data key uses; return (retired, still in use, keys are configured)."""
    settings = get_settings()

    async def in_use() -> set[str]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                return set((await conn.execute(select(DataKey.kek_id).distinct())).scalars())
        finally:
            await engine.dispose()

    used = asyncio.run(in_use())
    keyring = load_keys(settings).secret_keyring()
    old_ids = [kid for kid in keyring.by_id if kid != keyring.active_id]
    busy = sorted(kid for kid in old_ids if kid in used)
    if settings.keys.secret_encryption_key or settings.keys.secret_encryption_key_file:
        # Configured keys live outside Kavach: report which old ones may be removed.
        return sorted(kid for kid in old_ids if kid not in used), busy, True
    return retire_generated_secret_keys(settings, keep=set(busy)), busy, False


def backup_database(path: Path, *, force: bool) -> tuple[str, Manifest]:
    """Back the configured database up to `path`; return its description and the manifest."""
    from kavach.server.backup.flows import backup_to

    settings = get_settings()
    keys = load_keys(settings)
    manifest = asyncio.run(
        backup_to(path, settings=settings, keys=keys, actor=_local_actor(), force=force)
    )
    return describe_database(settings), manifest


def restore_database(path: Path) -> tuple[str, Manifest]:
    """Restore the backup at `path` into the configured, empty database."""
    from kavach.server.backup.flows import restore_from

    settings = get_settings()
    keys = load_keys(settings)
    manifest = asyncio.run(restore_from(path, settings=settings, keys=keys, actor=_local_actor()))
    return describe_database(settings), manifest
