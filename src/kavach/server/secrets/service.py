"""Database work on secret versions: read, write a snapshot, list, per-name history."""

from __future__ import annotations

import re
import secrets as random
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Actor
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.crypto.envelope import DecryptionFailed, seal_all, unseal_all
from kavach.server.db.base import utcnow
from kavach.server.errors import CannotDecrypt, NotFound
from kavach.server.pages import Keyset, PageRequest
from kavach.server.secrets.models import Secret, SecretVersion

_ID_ALPHABET = string.ascii_lowercase + string.digits
_RANDOM = random.SystemRandom()
ID_LENGTH = 8


def value_aad(environment_id: uuid.UUID, version_id: str, name: str) -> bytes:
    """Bind a ciphertext to its environment, version and name: copied elsewhere, it fails."""
    return _aad_prefix(environment_id, version_id) + name.encode()


def _aad_prefix(environment_id: uuid.UUID, version_id: str) -> bytes:
    """Return what every value_aad of one version starts with (built once per version)."""
    return f"kavach-secret:{environment_id}:{version_id}:".encode()


def _new_version_id() -> str:
    """Return a random 8-character version id (an identifier, not a secret)."""
    return "".join(_RANDOM.choices(_ID_ALPHABET, k=ID_LENGTH))


# PostgreSQL: lock the environment, then read its latest version with a fresh snapshot, in
# one round trip (migration 0007). Commits to one environment thus run one at a time.
_PG_LOCK_LATEST = select(SecretVersion).from_statement(
    text("SELECT * FROM kavach_lock_environment(:environment_id)")
)


async def lock_latest(session: AsyncSession, *, environment_id: uuid.UUID) -> SecretVersion | None:
    """Serialise commits to one environment and return its latest version.

    SQLite's transactions already run one at a time (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        found = await session.scalars(_PG_LOCK_LATEST, {"environment_id": environment_id})
        return found.first()
    return await latest_version(session, environment_id=environment_id)


# Built once: the read path runs these on every request, and building is what costs.
_LATEST = (
    select(SecretVersion)
    .where(SecretVersion.environment_id == bindparam("environment_id"))
    .order_by(SecretVersion.seq.desc())
    .limit(1)
)
LATEST_ID = _LATEST.with_only_columns(SecretVersion.id)
VERSION_COLUMNS = list(SecretVersion.__table__.columns)
VERSION_KEYS = [column.key for column in VERSION_COLUMNS]
# An insert's values: each column from the parameter of its name (see row_of).
VERSION_VALUES: dict[str, Any] = {key: bindparam(key) for key in VERSION_KEYS}
SECRETS_TABLE = Secret.metadata.tables[Secret.__tablename__]
_LATEST_WITH_VALUES = (
    select(*VERSION_COLUMNS, Secret.name, Secret.value_encrypted)
    .outerjoin(Secret, Secret.version_id == SecretVersion.id)
    .where(SecretVersion.id == LATEST_ID.scalar_subquery())
    .order_by(Secret.name)
)
_ALL_VALUES = (
    select(Secret.name, Secret.value_encrypted)
    .where(Secret.version_id == bindparam("version_id"))
    .order_by(Secret.name)
)


async def latest_version(
    session: AsyncSession, *, environment_id: uuid.UUID
) -> SecretVersion | None:
    """Return the newest version of an environment."""
    return await session.scalar(_LATEST, {"environment_id": environment_id})


async def secret_names(session: AsyncSession, *, version: SecretVersion) -> list[str]:
    """Return the names of a version's secrets, sorted (nothing is decrypted)."""
    query = select(Secret.name).where(Secret.version_id == version.id).order_by(Secret.name)
    return list(await session.scalars(query))


_ID = re.compile(r"[a-z0-9]{8}")
_NUMBER = re.compile(r"v?([0-9]{1,9})")
_FROM_LATEST = re.compile(r"latest(?:~([0-9]{1,9}))?")


async def get_version(
    session: AsyncSession, *, environment_id: uuid.UUID, version_id: str
) -> SecretVersion:
    """Return a version of this environment by id, number (3, v3) or latest~N; else a 404.

    An id that is eight digits is tried as an id first; any other id, even another
    environment's, is a 404.
    """
    if _ID.fullmatch(version_id):
        version = await session.get(SecretVersion, version_id)
        if version is not None and version.environment_id == environment_id:
            return version
    mine = select(SecretVersion).where(SecretVersion.environment_id == environment_id)
    if found := _FROM_LATEST.fullmatch(version_id):
        back = int(found.group(1) or 0)
        picked = mine.order_by(SecretVersion.seq.desc()).offset(back).limit(1)
        version = await session.scalar(picked)
    elif found := _NUMBER.fullmatch(version_id):
        version = await session.scalar(mine.where(SecretVersion.seq == int(found.group(1))))
    else:
        version = None
    if version is None:
        raise NotFound(f"version {version_id!r} not found in this environment")
    return version


async def read_values(
    session: AsyncSession,
    keys: SecretKeys,
    *,
    version: VersionFacts,
    names: set[str] | None = None,
) -> dict[str, str]:
    """Decrypt a version's secrets (or only the named ones), sorted by name."""
    query = _ALL_VALUES if names is None else _ALL_VALUES.where(Secret.name.in_(names))
    connection = await session.connection()  # Core: plain rows, less work per statement
    rows = list(await connection.execute(query, {"version_id": version.id}))
    return await _decrypt(session, keys, version, rows)


async def read_latest(
    session: AsyncSession, keys: SecretKeys, *, environment_id: uuid.UUID
) -> tuple[VersionFacts | None, dict[str, str]]:
    """Return the newest version and its decrypted secrets, in one query."""
    # Core, not ORM, execution: plain rows are all this needs, and cost less per request.
    connection = await session.connection()
    rows = list(await connection.execute(_LATEST_WITH_VALUES, {"environment_id": environment_id}))
    if not rows:
        return None, {}
    version = version_of(rows[0]._mapping)
    with_values = [row for row in rows if row.name is not None]
    return version, await _decrypt(session, keys, version, with_values)


class VersionFacts(Protocol):
    """What is read of a version: an entity (SecretVersion) or a record (VersionRecord)."""

    @property
    def id(self) -> str: ...
    @property
    def environment_id(self) -> uuid.UUID: ...
    @property
    def seq(self) -> int: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def author_type(self) -> str: ...
    @property
    def author_id(self) -> uuid.UUID | None: ...
    @property
    def author_label(self) -> str | None: ...
    @property
    def message(self) -> str: ...
    @property
    def secret_count(self) -> int: ...
    @property
    def rollback_of(self) -> str | None: ...
    @property
    def data_key_id(self) -> uuid.UUID | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def links(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A version's columns as read, outside any session (VERSION_KEYS, by name)."""

    id: str
    environment_id: uuid.UUID
    seq: int
    parent_id: str | None
    author_type: str
    author_id: uuid.UUID | None
    author_label: str | None
    message: str
    secret_count: int
    rollback_of: str | None
    data_key_id: uuid.UUID | None
    created_at: datetime
    links: str | None


def version_of(row: Mapping[Any, Any]) -> VersionRecord:
    """Build a version from a row holding its columns (a copy outside any session)."""
    # A record, not an entity: building an entity costs ten times as much, and it is only read.
    return VersionRecord(**{key: row[key] for key in VERSION_KEYS})


async def _decrypt(
    session: AsyncSession, keys: SecretKeys, version: VersionFacts, rows: list[Any]
) -> dict[str, str]:
    if not rows:
        return {}
    key = await version_key(session, keys, version)
    return decrypt_rows(key, version, [(row.name, row.value_encrypted) for row in rows])


async def version_key(session: AsyncSession, keys: SecretKeys, version: VersionFacts) -> bytes:
    """Return the data key a version's secrets are sealed with."""
    data_key_id = data_key_of(version)
    try:
        return (await keys.by_ids(session, {data_key_id}))[data_key_id]
    except CannotDecrypt as error:
        error.version_id = version.id
        raise


def data_key_of(version: VersionFacts) -> uuid.UUID:
    """Return the id of the data key a version's secrets are sealed with."""
    if version.data_key_id is None:  # only versions without secrets have none
        raise CannotDecrypt(
            f"version {version.id!r} names no data key for its secrets", version_id=version.id
        )
    return version.data_key_id


# A secret as stored: its name and ciphertext (the data key is its version's).
Sealed = tuple[str, bytes]


def decrypt_rows(key: bytes, version: VersionFacts, sealed: Iterable[Sealed]) -> dict[str, str]:
    """Decrypt a version's secrets with its data key `key`, in the order given."""
    prefix = _aad_prefix(version.environment_id, version.id)
    rows = list(sealed)
    try:
        opened = unseal_all(
            key, [(ciphertext, prefix + name.encode()) for name, ciphertext in rows]
        )
    except DecryptionFailed as failed:
        name = rows[failed.index][0]
        raise CannotDecrypt(f"secret {name!r} failed to decrypt", version_id=version.id) from None
    return {name: plain.decode("utf-8") for (name, _), plain in zip(rows, opened, strict=True)}


@dataclass(frozen=True)
class NewVersion:
    """What a commit writes: the full snapshot and its provenance."""

    values: dict[str, str]
    message: str
    author: Actor
    parent: VersionFacts | None
    rollback_of: str | None = None
    links: str | None = None  # where its references lead (secrets.linking.Links)


@dataclass(frozen=True)
class Drafted:
    """A commit's next values, and their links when a value holds `${`."""

    values: dict[str, str]
    links: str | None = None


async def write_version(
    session: AsyncSession, keys: SecretKeys, *, environment_id: uuid.UUID, new: NewVersion
) -> SecretVersion:
    """Store a new immutable version holding exactly `new.values`."""
    data_key_id, key = await keys.for_writing(session, environment_id=environment_id)
    connection = await session.connection()
    statement = _INSERT_VERSION[connection.dialect.name]
    version = draft_version(environment_id, new, data_key_id)
    # Only an id clash inserts nothing (any other conflict is an error): draw it again.
    while await connection.scalar(statement, row_of(version)) is None:
        version.id = _new_version_id()
    if new.values:
        # The table, not the entity: a plain executemany, without the ORM's bookkeeping.
        rows = sealed_rows(version, key, new.values)
        await connection.execute(_INSERT_SECRETS, rows)
    return version


def _insert_returning_id(dialect_insert: Any) -> Any:
    """Insert a version, returning its id; an id clash inserts nothing and returns none."""
    statement = dialect_insert(SecretVersion).values(VERSION_VALUES)
    statement = statement.on_conflict_do_nothing(index_elements=[SecretVersion.id])
    return statement.returning(SecretVersion.id)


_INSERT_VERSION = {
    "postgresql": _insert_returning_id(pg_insert),
    "sqlite": _insert_returning_id(sqlite_insert),
}
_INSERT_SECRETS = insert(SECRETS_TABLE).values(
    {c.key: bindparam(c.key) for c in SECRETS_TABLE.columns}
)


def draft_version(
    environment_id: uuid.UUID, new: NewVersion, data_key_id: uuid.UUID
) -> SecretVersion:
    """Return the version a commit makes, sealed with the given data key, not yet stored."""
    return SecretVersion(
        id=_new_version_id(),
        environment_id=environment_id,
        seq=(new.parent.seq + 1) if new.parent else 1,
        parent_id=new.parent.id if new.parent else None,
        author_type=new.author.type,
        author_id=new.author.id,
        author_label=new.author.label,
        message=new.message,
        secret_count=len(new.values),
        rollback_of=new.rollback_of,
        created_at=utcnow(),
        links=new.links,
        data_key_id=data_key_id,
    )


def row_of(version: SecretVersion) -> dict[str, Any]:
    """Return a version's columns by name, as an insert of the row takes them."""
    return {key: getattr(version, key) for key in VERSION_KEYS}


def sealed_values(
    environment_id: uuid.UUID, version_id: str, key: bytes, values: Mapping[str, str]
) -> list[bytes]:
    """Encrypt a version's values in order, each bound to its environment, version and name."""
    prefix = _aad_prefix(environment_id, version_id)
    return seal_all(
        key, [(value.encode("utf-8"), prefix + name.encode()) for name, value in values.items()]
    )


def sealed_rows(
    version: SecretVersion, key: bytes, values: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Return a version's secrets, sealed with its data key `key`, as rows of the table."""
    ciphertexts = sealed_values(version.environment_id, version.id, key, values)
    return [
        {"version_id": version.id, "name": name, "value_encrypted": ciphertext}
        for name, ciphertext in zip(values, ciphertexts, strict=True)
    ]


VERSIONS = Keyset("versions", SecretVersion.seq, descending=True)  # seq: unique per environment


async def list_versions(
    session: AsyncSession, *, environment_id: uuid.UUID, request: PageRequest
) -> tuple[list[SecretVersion], str | None]:
    """Return a page of versions, newest first."""
    query = select(SecretVersion).where(SecretVersion.environment_id == environment_id)
    found = list(await session.scalars(VERSIONS.page(query, request)))
    return VERSIONS.cut(found, request, lambda version: (version.seq,))


async def versions_with_name(
    session: AsyncSession, keys: SecretKeys, *, environment_id: uuid.UUID, name: str
) -> list[tuple[SecretVersion, str | None]]:
    """Return every version, oldest first, with the value `name` had in it (None: absent)."""
    rows = await session.execute(
        select(SecretVersion, Secret)
        .outerjoin(Secret, (Secret.version_id == SecretVersion.id) & (Secret.name == name))
        .where(SecretVersion.environment_id == environment_id)
        .order_by(SecretVersion.seq)
    )
    pairs = [(version, secret) for version, secret in rows]
    data_keys = await keys.by_ids(session, {data_key_of(v) for v, s in pairs if s is not None})
    result: list[tuple[SecretVersion, str | None]] = []
    for version, secret in pairs:
        value = None
        if secret is not None:
            sealed = [(name, secret.value_encrypted)]
            value = decrypt_rows(data_keys[data_key_of(version)], version, sealed)[name]
        result.append((version, value))
    return result
