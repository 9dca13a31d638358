"""Pages of a listing: a limit, an opaque cursor, and one answer shape for every listing.

Every listing answers `{"items": [...], "next": CURSOR | null}`. A page is cut from the
listing's order by a keyset (columns that are unique together), never by an offset: a
page costs the same however deep it is, and rows added or removed meanwhile shift no
other row. The cursor names the last row of a page, and the listing it came from.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, TypeDecorator, literal, tuple_
from sqlalchemy.orm import QueryableAttribute

from kavach.server.errors import ValidationFailed

T = TypeVar("T")
R = TypeVar("R")
Q = TypeVar("Q")  # a Select, of whatever columns
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 1024


class Page(BaseModel, Generic[T]):
    """A page of a listing, in its order, and the cursor of the next (None: the last)."""

    items: list[T]
    next: str | None


@dataclass(frozen=True)
class PageRequest:
    """How many items a page holds, and after which cursor it starts (None: the first)."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


class Keyset:
    """A listing's order, on columns unique together, and the cursors that name places in it."""

    def __init__(
        self,
        listing: str,
        *columns: ColumnElement[Any] | QueryableAttribute[Any],
        descending: bool = False,
    ) -> None:
        self.listing = listing
        self.columns = [c.expression if isinstance(c, QueryableAttribute) else c for c in columns]
        self.descending = descending
        self._types = [_python_type(column) for column in self.columns]

    def page(self, query: Q, request: PageRequest) -> Q:
        """Return the query in this order, from after the cursor, one row more than a page."""
        selected = cast("Select[Any]", query)
        after = self._decoded(request.cursor)
        if after is not None:
            key = tuple_(*self.columns)
            at = tuple_(*(literal(v, c.type) for v, c in zip(after, self.columns, strict=True)))
            selected = selected.where(key < at if self.descending else key > at)
        order = [column.desc() if self.descending else column.asc() for column in self.columns]
        return cast(Q, selected.order_by(*order).limit(request.limit + 1))

    def after(self, request: PageRequest) -> list[Any] | None:
        """Return the key values the request's cursor names (None: from the first row)."""
        return self._decoded(request.cursor)

    def cut(
        self, rows: Sequence[R], request: PageRequest, key: Callable[[R], Sequence[Any]]
    ) -> tuple[list[R], str | None]:
        """Return the page's rows and the cursor after the last (None: no more rows)."""
        page = list(rows[: request.limit])
        if len(rows) <= request.limit:
            return page, None
        return page, self._encoded(key(page[-1]))

    def _encoded(self, values: Sequence[Any]) -> str:
        plain = [self.listing, *(_plain(value) for value in values)]
        return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")

    def _decoded(self, cursor: str | None) -> list[Any] | None:
        if cursor is None:
            return None
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            found = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(found, list) or found[:1] != [self.listing]:
                raise ValueError(cursor)
            values = found[1:]
            if len(values) != len(self.columns):
                raise ValueError(cursor)
            return [_typed(v, t) for v, t in zip(values, self._types, strict=True)]
        except (ValueError, TypeError, UnicodeEncodeError, binascii.Error, orjson.JSONDecodeError):
            raise ValidationFailed("the cursor is not one this listing gave") from None


def _plain(value: Any) -> Any:
    """Return a key value as JSON holds it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _python_type(column: ColumnElement[Any]) -> type:
    """Return the Python type a key column holds (a decorated type's underlying one)."""
    kind = column.type
    return kind.impl_instance.python_type if isinstance(kind, TypeDecorator) else kind.python_type


def _typed(value: Any, wanted: type) -> Any:
    """Return a key value from a cursor as its column holds it; ValueError if it cannot be."""
    if wanted is uuid.UUID:
        return uuid.UUID(str(value))
    if wanted is datetime:
        return datetime.fromisoformat(str(value))
    if wanted is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if wanted is str and isinstance(value, str):
        return value
    raise ValueError(value)
