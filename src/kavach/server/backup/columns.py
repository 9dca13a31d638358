"""Column kinds: one written form per kind, the same for SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeEngine

from kavach.server.backup.errors import BackupError, NotABackup
from kavach.server.db.base import UTCDateTime
from kavach.server.db.registry import metadata

Kind = Literal["uuid", "datetime", "bytes", "json", "bool", "int", "float", "str"]

# How each kind is read and bound; the models' types where they exist, so values are
# stored exactly as the server stores them (UUIDs as 32 hex digits on SQLite, for one).
_TYPES: dict[Kind, Callable[[], TypeEngine[Any]]] = {
    "uuid": sa.Uuid,
    "datetime": UTCDateTime,
    "bytes": sa.LargeBinary,
    "json": sa.JSON,
    "bool": sa.Boolean,
    "int": sa.BigInteger,
    "float": sa.Float,
    "str": sa.Text,
}
# Checked in order: Boolean before Integer, every specific kind before strings.
_CLASSES: list[tuple[type[TypeEngine[Any]], Kind]] = [
    (sa.Uuid, "uuid"),
    (sa.DateTime, "datetime"),
    (sa.LargeBinary, "bytes"),
    (sa.JSON, "json"),
    (sa.Boolean, "bool"),
    (sa.Integer, "int"),
    (sa.Float, "float"),
    (sa.String, "str"),
]


def kind_of(table: str, column: str, reflected: TypeEngine[Any]) -> Kind:
    """Return a column's kind: from the model when it has one, else from the database."""
    model = metadata.tables.get(table)
    declared = model.columns[column].type if model is not None and column in model.columns else None
    found = declared if declared is not None else reflected
    if isinstance(found, sa.TypeDecorator):
        found = found.impl_instance
    for cls, kind in _CLASSES:
        if isinstance(found, cls):
            return kind
    raise BackupError(f"column {table}.{column} has a type backups do not handle ({found})")


def typed_table(name: str, columns: Sequence[tuple[str, Kind]]) -> TableClause:
    """Return a table to select from and insert into with each column's kind."""
    return sa.table(name, *(sa.column(column, _TYPES[kind]()) for column, kind in columns))


def _encode_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _encode_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


_ENCODERS: dict[Kind, Callable[[Any], Any]] = {
    "uuid": str,
    "datetime": _encode_datetime,
    "bytes": _encode_bytes,
}


def encode_row(kinds: Sequence[Kind], row: Sequence[Any]) -> list[Any]:
    """Turn a row read from the database into JSON values."""
    encoded = []
    for kind, value in zip(kinds, row, strict=True):
        encoder = _ENCODERS.get(kind)
        encoded.append(value if value is None or encoder is None else encoder(value))
    return encoded


def _decode_datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a timestamp without its time zone")
    return parsed


def _checked(expected: type | tuple[type, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        # bool is an int in Python: an int column never takes true or false.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"not {expected}")
        return value

    return check


_DECODERS: dict[Kind, Callable[[Any], Any]] = {
    "uuid": lambda value: uuid.UUID(_checked(str)(value)),
    "datetime": _decode_datetime,
    "bytes": lambda value: base64.b64decode(_checked(str)(value), validate=True),
    "json": lambda value: value,
    "bool": _checked(bool),
    "int": _checked(int),
    "float": _checked((int, float)),
    "str": _checked(str),
}


def decode_row(table: str, columns: Sequence[tuple[str, Kind]], row: Any) -> dict[str, Any]:
    """Turn one stored row back into values to insert; NotABackup if it is malformed."""
    if not isinstance(row, list) or len(row) != len(columns):
        raise NotABackup(f"a row of {table} does not have its {len(columns)} columns")
    decoded = {}
    for (name, kind), value in zip(columns, row, strict=True):
        try:
            decoded[name] = None if value is None else _DECODERS[kind](value)
        except (ValueError, TypeError, binascii.Error):
            raise NotABackup(f"a value of {table}.{name} is not a valid {kind}") from None
    return decoded
