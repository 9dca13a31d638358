"""Cursors name a place in their own listing's order, and nothing else."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Uuid

from kavach.server.errors import ValidationFailed
from kavach.server.pages import Keyset, PageRequest

ROWS = Table(
    "rows",
    MetaData(),
    Column("name", String),
    Column("id", Uuid),
    Column("at", DateTime(timezone=True)),
    Column("seq", Integer),
)
KEYSET = Keyset("rows", ROWS.c.name, ROWS.c.id, ROWS.c.at, ROWS.c.seq)
# Fixed, not drawn: parametrized ids must be the same in every test worker.
ID = "0b7f2cfb-18b6-4151-b2ed-26ca9b03ea83"
AT = "2026-01-02T03:04:05+00:00"


def _cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def test_a_page_of_more_rows_than_its_limit_names_its_last_row() -> None:
    key = ("web", uuid.uuid4(), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), 7)
    rows = [("a",), key, ("c",)]
    page, after = KEYSET.cut(rows, PageRequest(limit=2), lambda row: row)
    assert page == rows[:2] and after is not None
    assert KEYSET._decoded(after) == list(key)
    assert KEYSET.cut(rows, PageRequest(limit=3), lambda row: row) == (rows, None)


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        _cursor("other", "web", ID, AT, 7),
        _cursor("rows", "web", ID, AT),
        _cursor("rows", "web", "not-a-uuid", AT, 7),
        _cursor("rows", "web", ID, "yesterday", 7),
        _cursor("rows", "web", ID, AT, "7"),
        _cursor("rows", "web", ID, AT, True),
        _cursor("rows", 1, ID, AT, 7),
        base64.urlsafe_b64encode(b'{"rows": 1}').decode(),
    ],
    ids=[
        "not base64 JSON",
        "not base64",
        "another listing",
        "a value short",
        "not a uuid",
        "not a time",
        "a number as text",
        "a boolean for a number",
        "a number for text",
        "not a list",
    ],
)
def test_a_cursor_not_made_by_this_listing_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailed, match="cursor"):
        KEYSET.page(ROWS.select(), PageRequest(cursor=cursor))
