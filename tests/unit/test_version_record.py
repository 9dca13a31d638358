"""A version read outside a session is a record with exactly the columns of the table."""

from __future__ import annotations

import dataclasses

from kavach.server.secrets.service import VERSION_KEYS, VersionRecord


def test_a_version_record_has_every_column_of_a_version_and_nothing_else() -> None:
    assert sorted(field.name for field in dataclasses.fields(VersionRecord)) == sorted(VERSION_KEYS)
