"""PL/pgSQL functions live in versioned files (src/kavach/server/db/sql) that migrations load.

A released file is never edited, and a changed function gets a new version and a migration
that loads it: so at head, every function's source is its newest file's, whether the database
was made at head here or by an earlier release and upgraded (test_upgrade checks that one).
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

import kavach.server.db.migrations
from kavach.server.db import sql_files
from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import migrate
from tests.conftest import make_settings

_VERSIONS = Path(kavach.server.db.migrations.__file__).parent / "versions"
_MIGRATIONS = sorted(_VERSIONS.glob("[0-9]*.py"))
# The body between the dollar quotes: what PostgreSQL keeps as the function's source.
_BODY = re.compile(r"\bAS\s+(\$[A-Za-z_]*\$)(?P<body>.*)\1", re.DOTALL)

# Each file's checksum (sha256, first 16 hex digits), recorded when it was added: a file is
# never edited once released, so a mismatch means one was. A new version adds its line here.
_RECORDED = {
    "bump_access_epoch.v1.sql": "2bd4f15c17318c03",
    "kavach_audit_chain_head.v1.sql": "b3143785aa710120",
    "kavach_check_at_head.v1.sql": "f036e779676afb5c",
    "kavach_check_chain_head.v1.sql": "73fa1f63b523c06d",
    "kavach_lock_environment.v1.sql": "699a1b44d9091ee1",
    "kavach_lock_for_commit.v1.sql": "511d426901e8cc2a",
    "kavach_lock_for_commit.v2.sql": "61fc4f9c867d8f33",
}


def _loaded_by(path: Path) -> set[tuple[str, int]]:
    """Every (function, version) a migration passes to sql_files.load."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "sql_files"
        ):
            name, version = (ast.literal_eval(arg) for arg in node.args)
            found.add((name, version))
    return found


def _body(statement: str) -> str:
    match = _BODY.search(statement)
    assert match is not None, f"no dollar-quoted body in {statement[:60]!r}"
    return match["body"]


def test_every_file_a_migration_loads_exists_and_every_file_is_loaded() -> None:
    loaded = {pair: path.name for path in _MIGRATIONS for pair in _loaded_by(path)}
    assert loaded, "no migration loads a function file: is the call still sql_files.load?"
    files = {(name, v) for name, numbers in sql_files.versions().items() for v in numbers}
    missing = {sql_files.file_name(*pair): loaded[pair] for pair in set(loaded) - files}
    assert not missing, f"migrations load files that do not exist: {missing}"
    unused = sorted(sql_files.file_name(*pair) for pair in files - set(loaded))
    assert not unused, f"no migration loads {unused}: add the migration that creates them"


def test_each_file_creates_the_function_it_is_named_after() -> None:
    for name, numbers in sql_files.versions().items():
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}: versions {numbers}"
        for version in numbers:
            statement = sql_files.load(name, version)
            assert re.match(rf"CREATE (OR REPLACE )?FUNCTION {name}\(", statement), (
                f"{sql_files.file_name(name, version)} does not create {name}"
            )
            _body(statement)


def test_no_file_changed_since_it_was_recorded() -> None:
    found = {
        sql_files.file_name(name, v): hashlib.sha256(sql_files.load(name, v).encode()).hexdigest()[
            :16
        ]
        for name, numbers in sql_files.versions().items()
        for v in numbers
    }
    unrecorded = sorted(set(found) - set(_RECORDED))
    assert not unrecorded, f"record the checksums of {unrecorded} in _RECORDED: {found}"
    changed = sorted(name for name, digest in _RECORDED.items() if found.get(name) != digest)
    assert not changed, (
        f"{changed} changed or went missing: a released file is never edited; give the "
        "function a new version file and a migration that loads it"
    )


def test_no_migration_holds_a_function_body_of_its_own() -> None:
    for path in _MIGRATIONS:
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"CREATE\s+(OR\s+REPLACE\s+)?FUNCTION|plpgsql", source, re.I), (
            f"{path.name} defines a function in a string: put it in a versioned .sql file"
        )


def test_load_refuses_what_is_not_a_function_version() -> None:
    with pytest.raises(ValueError, match="not a function name"):
        sql_files.load("../secrets", 1)
    with pytest.raises(ValueError, match="versions start at 1"):
        sql_files.load("kavach_lock_for_commit", 0)
    with pytest.raises(FileNotFoundError, match="no version 99 of kavach_lock_for_commit"):
        sql_files.load("kavach_lock_for_commit", 99)


async def assert_functions_are_their_newest_files(connection: AsyncConnection) -> None:
    """Check every function in the database is the newest version of its file, and no more."""
    query = (
        "SELECT proname, prosrc FROM pg_proc"
        " WHERE pronamespace = current_schema()::regnamespace ORDER BY proname"
    )
    rows = (await connection.execute(text(query))).all()
    found = {str(name): str(source) for name, source in rows}
    assert len(found) == len(rows), "a function is overloaded: name its files apart"
    newest = {name: numbers[-1] for name, numbers in sql_files.versions().items()}
    assert set(found) == set(newest)
    for name, version in newest.items():
        assert found[name] == _body(sql_files.load(name, version)), (
            f"{name} is not {sql_files.file_name(name, version)}: was a released file "
            "edited, or does the newest migration load an older version?"
        )


async def test_functions_at_head_are_their_newest_files(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path, postgres_url)
    engine = create_engine(settings)
    try:
        assert (await migrate(engine, settings)).at_head
        async with engine.connect() as connection:
            await assert_functions_are_their_newest_files(connection)
    finally:
        await engine.dispose()
