"""Backup and restore: a snapshot taken while commits run restores exactly, on both databases."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from kavach.server.access import SYSTEM
from kavach.server.app import create_app
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.offline import verify_all
from kavach.server.backup.archive import Manifest
from kavach.server.backup.errors import KeysMissing, NotABackup, SchemaTooNew, TargetNotEmpty
from kavach.server.backup.flows import backup_to, restore_from
from kavach.server.backup.keyuse import held_key_ids
from kavach.server.backup.revisions import head
from kavach.server.crypto.keys import KeyMaterial, load_keys
from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import migration_state
from kavach.server.settings import Settings
from tests.conftest import (
    BACKENDS,
    POSTGRES_ADMIN_URL,
    InProcessServer,
    make_settings,
    random_keys,
)
from tests.integration.test_resources import Api, user
from tests.integration.upgrade_check import every

_EVENT_COLUMNS = [c for c in AuditEvent.__table__.columns]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[InProcessServer]:
    """Run the app on these settings with the keys of their data directory."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://127.0.0.1",
        )
        async with client:
            yield InProcessServer(app=app, client=client)


async def audit_rows(settings: Settings) -> dict[int, dict[str, Any]]:
    """Read every audit event, every column, by id."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(*_EVENT_COLUMNS))
            return {row.id: dict(row._mapping) for row in rows}
    finally:
        await engine.dispose()


@dataclass
class Source:
    """A server's database backed up while an editor kept committing."""

    backend: str
    data_dir: Path
    settings: Settings
    keys: KeyMaterial
    backup: Path
    manifest: Manifest
    env_path: str
    acked_before: set[str]
    acked: dict[str, dict[str, str]]  # every acknowledged version: its complete secrets
    committed_during: int
    events: dict[int, dict[str, Any]]
    service_token: str
    org_id: str


async def _fill(server: InProcessServer) -> tuple[Api, str, str, str]:
    """Create a tree, a grant, a user group, a token and a provider; return the env path."""
    alice = await user(server, "alice")
    await user(server, "bob")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "pay"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": org["id"], "name": "team"}, status=201
    )
    await alice.call("POST", f"/user-groups/{team['id']}/members", {"user": "bob"}, status=201)
    await alice.call(
        "POST", f"/environments/{env['id']}/members", {"user": "bob", "role": "viewer"}, status=200
    )
    token = await alice.call(
        "POST", f"/environments/{env['id']}/tokens", {"name": "ci", "role": "viewer"}, status=201
    )
    provider = {
        "provider": "github",
        "config": {"owner": "o", "repository": "r", "api_url": "http://127.0.0.1:9"},
        "credentials": {"token": "ghp_" + "a" * 36},
    }
    await alice.call("POST", f"/environments/{env['id']}/providers/", provider, status=201)
    return alice, f"/environments/{env['id']}/secrets", token["token"], org["id"]


@pytest.fixture(scope="module", params=BACKENDS)
async def source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Source]:
    """Fill a server, then back it up while an editor commits one version after another."""
    backend = str(request.param)
    base = tmp_path_factory.mktemp(f"source-{backend}")
    async with fresh_database(backend) as url:
        yield await _backed_up_while_committing(backend, base, make_settings(base / "data", url))


async def _backed_up_while_committing(backend: str, base: Path, settings: Settings) -> Source:
    async with running(settings) as server:
        alice, path, service_token, org_id = await _fill(server)
        state: dict[str, str] = {}
        acked: dict[str, dict[str, str]] = {}
        stop, progress = asyncio.Event(), asyncio.Event()

        async def commit_forever() -> None:
            count = 0
            while not stop.is_set():
                count += 1
                change = {"COUNTER": str(count), f"K{count % 5}": f"value-{count}-" + "x" * count}
                body = {"message": f"commit {count}", "set": change}
                version = await alice.call("POST", f"{path}/versions", body, status=201)
                state.update(change)
                acked[version["id"]] = dict(state)
                progress.set()

        async def commits(at_least: int) -> None:
            while len(acked) < at_least:
                progress.clear()
                await progress.wait()

        committer = asyncio.create_task(commit_forever())
        await commits(3)
        before = set(acked)
        backup = base / "kavach.backup"
        keys = load_keys(settings)
        manifest = await backup_to(backup, settings=settings, keys=keys, actor=SYSTEM)
        during = len(acked) - len(before)
        await commits(len(acked) + 3)
        stop.set()
        await committer
    return Source(
        backend=backend,
        data_dir=base / "data",
        settings=settings,
        keys=keys,
        backup=backup,
        manifest=manifest,
        env_path=path,
        acked_before=before,
        acked=acked,
        committed_during=during,
        events=await audit_rows(settings),
        service_token=service_token,
        org_id=org_id,
    )


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str | None]:
    """Give the URL of a new, empty database (None: SQLite in the data directory)."""
    if backend == "sqlite":
        yield None
        return
    name = f"kavach_backup_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def empty_target(source: Source, base: Path, backend: str) -> AsyncIterator[Settings]:
    """Give a fresh database, with the source server's keys restored beside it."""
    data_dir = base / f"target-{secrets.token_hex(3)}"
    data_dir.mkdir(mode=0o700)
    shutil.copy(source.data_dir / "keys.json", data_dir / "keys.json")
    async with fresh_database(backend) as url:
        yield make_settings(data_dir, url)


async def restore(source: Source, settings: Settings, backup: Path | None = None) -> Manifest:
    """Restore the source's backup (or another file) with the source's keys."""
    file = backup or source.backup
    return await restore_from(file, settings=settings, keys=source.keys, actor=SYSTEM)


def rewritten(
    source: Source,
    out: Path,
    change: Callable[[dict[str, Any]], None],
    drop: tuple[str, ...] = (),
    drop_columns: dict[str, tuple[str, ...]] | None = None,
) -> Path:
    """Copy the source's backup with its manifest changed, less some tables and columns."""
    gone = drop_columns or {}
    with tarfile.open(source.backup, "r:gz") as old:
        files = {member.name: (member, old.extractfile(member)) for member in old.getmembers()}
        contents = {name: handle.read() for name, (_m, handle) in files.items() if handle}
    manifest = json.loads(contents["manifest.json"])
    for entry in manifest["tables"]:
        columns = gone.get(entry["name"], ())
        if not columns:
            continue
        keep = [i for i, (name, _kind) in enumerate(entry["columns"]) if name not in columns]
        entry["columns"] = [entry["columns"][i] for i in keep]
        lines = [
            orjson.dumps([row[i] for i in keep]) + b"\n"
            for row in map(orjson.loads, contents[entry["member"]].splitlines())
        ]
        contents[entry["member"]] = b"".join(lines)
        entry["sha256"] = hashlib.sha256(contents[entry["member"]]).hexdigest()
    change(manifest)
    contents["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w:gz") as new:
        for name, (member, _handle) in files.items():
            if name.endswith(tuple(f"_{table}.jsonl" for table in drop)):
                continue
            data = contents.get(name, b"")
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))
    return out


@pytest.mark.parametrize("into", ["same", "other"])
async def test_restore_brings_back_every_acknowledged_version_and_verifies(
    source: Source, tmp_path: Path, into: str
) -> None:
    backend = source.backend if into == "same" else next(b for b in BACKENDS if b != source.backend)
    async with empty_target(source, tmp_path, backend) as settings:
        manifest = await restore(source, settings)
        restored_events = await audit_rows(settings)
        async with running(settings) as server:
            alice = await user(server, "alice")
            listed = await every(alice, f"{source.env_path}/versions", limit=200)
            versions = {v["id"]: v["seq"] for v in listed}
            # The snapshot is one moment: every version acknowledged before it, a prefix after.
            assert source.committed_during > 0  # the backup ran while commits went on
            assert source.acked_before <= set(versions) <= set(source.acked)
            assert sorted(versions.values()) == list(range(1, len(versions) + 1))
            for version_id in versions:
                detail = await alice.call(
                    "GET", f"{source.env_path}/versions/{version_id}", status=200
                )
                assert detail["secrets"] == source.acked[version_id]
            history = await alice.call("GET", f"{source.env_path}/COUNTER/history", status=200)
            assert len(history) == len(versions)
            by_seq = sorted(versions, key=lambda version_id: versions[version_id])
            first, last = by_seq[0], by_seq[-1]
            diff = await alice.call(
                "GET", f"{source.env_path}/diff?from={first}&to={last}", status=200
            )
            assert "COUNTER" in diff["modified"]
            # Tokens are stored hashed and restored as they were: the CI token still reads.
            as_ci = Api(server, source.service_token)
            latest = await as_ci.call("GET", source.env_path, status=200)
            assert latest["secrets"] == source.acked[last]
            env_id = source.env_path.split("/")[2]
            providers = await every(alice, f"/environments/{env_id}/providers/")
            assert [p["provider"] for p in providers] == ["github"]
            # New rows get new ids (PostgreSQL sequences moved past the restored ones).
            body = {"message": "after restore", "set": {"NEW": "1"}}
            await alice.call("POST", f"{source.env_path}/versions", body, status=201)
            verified = await alice.call(
                "GET", f"/audit/verify?organization_id={source.org_id}", status=200
            )
            assert verified["intact"], verified
        # `kavach audit verify --local`: every chain, the server's included.
        reports = await asyncio.to_thread(verify_all, settings)
        assert all(report.intact for report in reports), reports
    # Restored events are the source's own, column for column, hashes and ids included.
    restored = {i: row for i, row in restored_events.items() if row["action"] != "server.restore"}
    assert restored and {i: source.events.get(i) for i in restored} == restored
    assert manifest.database == source.backend


async def test_manifest_names_key_ids_and_the_file_holds_no_key_or_value(source: Source) -> None:
    manifest, held = source.manifest, held_key_ids(source.keys)
    assert manifest.schema_revision == head()
    assert manifest.keys == held  # every key is in use: data keys, credentials, audit events
    counts = {table.name: table.rows for table in manifest.tables}
    assert counts["users"] == 2 and counts["role_bindings"] >= 3 and counts["secrets"] > 0
    assert "alembic_version" not in counts and "access_epoch" not in counts
    assert os.stat(source.backup).st_mode & 0o777 == 0o600
    with tarfile.open(source.backup, "r:gz") as archive:
        content = b"".join(
            handle.read()
            for member in archive.getmembers()
            if (handle := archive.extractfile(member)) is not None
        )
    for key in (
        source.keys.jwt_signing_key,
        source.keys.secret_encryption_key,
        source.keys.provider_credential_key,
    ):
        for form in (key, base64.urlsafe_b64encode(key), base64.b64encode(key), key.hex().encode()):
            assert form not in content
    assert b"value-1-" not in content and b"ghp_" not in content
    assert source.service_token.encode() not in content


async def test_refusals_leave_the_target_empty_and_restorable(
    source: Source, tmp_path: Path
) -> None:
    async with empty_target(source, tmp_path, source.backend) as settings:
        newer = rewritten(source, tmp_path / "newer", lambda m: m.update(schema_revision="0099"))
        with pytest.raises(SchemaTooNew, match=f"0099.*{head()}"):
            await restore(source, settings, newer)

        other_keys = random_keys()
        with pytest.raises(KeysMissing) as missing:
            await restore_from(source.backup, settings=settings, keys=other_keys, actor=SYSTEM)
        text = missing.value.message
        for kind_ids in (source.manifest.keys.secret_encryption, source.manifest.keys.audit):
            assert all(key_id in text for key_id in kind_ids)
        assert source.manifest.keys.provider_credential[0] in text
        assert base64.urlsafe_b64encode(source.keys.secret_encryption_key).decode() not in text

        def undercount(manifest: dict[str, Any]) -> None:
            manifest["tables"][-1]["rows"] += 1

        with pytest.raises(NotABackup, match="do not match its manifest"):
            await restore(source, settings, rewritten(source, tmp_path / "count", undercount))
        cut = tmp_path / "cut"
        data = source.backup.read_bytes()
        cut.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(NotABackup, match=r"damaged|ends before"):
            await restore(source, settings, cut)
        for junk in (b"", b"not a backup", gzip.compress(b"not a tar")):
            (tmp_path / "junk").write_bytes(junk)
            with pytest.raises(NotABackup, match="not a Kavach backup"):
                await restore(source, settings, tmp_path / "junk")

        # Nothing above left a row behind: the real backup still restores, once.
        await restore(source, settings)
        with pytest.raises(TargetNotEmpty, match="already holds data"):
            await restore(source, settings)


async def test_an_older_backup_restores_into_a_migrated_database_and_reaches_head(
    source: Source, tmp_path: Path
) -> None:
    # Revisions 0011 and 0012 changed triggers and an index only, 0013 added the pending
    # grants, 0014 OpenID Connect's tables and columns, 0015 references' (and the sync run's
    # revision) and 0016 the webhooks': without them, this backup's tables are those of 0010.
    added = (
        "pending_grants",
        "oidc_logins",
        "user_identities",
        "workload_trusts",
        "reference_edges",
        "webhooks",
        "webhook_cursors",
        "webhook_deliveries",
    )

    def at_0010(manifest: dict[str, Any]) -> None:
        manifest["schema_revision"] = "0010"
        manifest["tables"] = [t for t in manifest["tables"] if t["name"] not in added]

    columns_0014 = {
        "device_authorizations": ("identity_provider",),
        "user_group_members": ("source",),
        "service_tokens": ("workload_trust_id", "subject"),
        "secret_versions": ("links",),
        "sync_runs": ("revision",),
    }
    older = rewritten(source, tmp_path / "older", at_0010, drop=added, drop_columns=columns_0014)
    async with empty_target(source, tmp_path, source.backend) as settings:
        async with running(settings):
            pass  # a server started on the new database: migrated to head, still empty
        await restore(source, settings, older)
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                assert (await migration_state(connection)).at_head
        finally:
            await engine.dispose()
        async with running(settings) as server:
            alice = await user(server, "alice")
            latest = await alice.call("GET", source.env_path, status=200)
            assert latest["version"]["id"] in source.acked
            bob = await user(server, "bob")
            # The 0011 triggers are back: revoking bob's role ends his access at once.
            await bob.call("GET", source.env_path, status=200)
            members = source.env_path.removesuffix("/secrets") + "/members"
            await alice.call("DELETE", members, {"user": "bob"}, status=200)
            await bob.call("GET", source.env_path, status=404)


def _cli(*args: str) -> tuple[int, str]:
    from kavach.cli.main import app as cli

    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


async def test_cli_backup_is_0600_refuses_overwrite_and_restore_explains(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVACH_DATA_DIR", str(source.data_dir))
    if source.settings.db.database_url:
        monkeypatch.setenv("KAVACH_DATABASE_URL", source.settings.db.database_url)
    target = tmp_path / "cli.backup"
    old_umask = os.umask(0)
    try:
        code, out = await asyncio.to_thread(_cli, "server", "backup", "--to", str(target))
    finally:
        os.umask(old_umask)
    assert code == 0, out
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert "Backed up" in out and source.manifest.keys.audit[0] in out
    target.write_bytes(b"keep me")
    code, out = await asyncio.to_thread(_cli, "server", "backup", "--to", str(target))
    assert (code, target.read_bytes()) == (1, b"keep me")
    assert "exists; pass --force" in out
    target.chmod(0o644)
    code, out = await asyncio.to_thread(_cli, "server", "backup", "--to", str(target), "--force")
    assert code == 0, out
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert target.read_bytes()[:2] == b"\x1f\x8b"  # gzip

    code, out = await asyncio.to_thread(_cli, "server", "restore", str(target))
    assert code == 1 and "already holds data" in out, out
    (tmp_path / "junk").write_bytes(b"junk")
    code, out = await asyncio.to_thread(_cli, "server", "restore", str(tmp_path / "junk"))
    assert code == 1 and "not a Kavach backup" in out, out
    assert "Traceback" not in out
