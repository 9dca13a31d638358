"""Schema revisions in the order this Kavach's migrations apply them."""

from __future__ import annotations

from functools import cache

from alembic.script import ScriptDirectory

from kavach.server.backup.errors import SchemaTooNew
from kavach.server.db.migrate import alembic_config


@cache
def known_revisions() -> tuple[str, ...]:
    """Return every revision this Kavach ships, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([revision.revision for revision in script.walk_revisions()]))


def head() -> str:
    """Return the newest revision this Kavach ships."""
    return known_revisions()[-1]


def check_known(revision: str, *, what: str) -> None:
    """Refuse a revision this Kavach does not ship (made by a newer one), naming both."""
    if revision not in known_revisions():
        raise SchemaTooNew(
            f"{what} is at schema revision {revision}, which this Kavach does not know (its "
            f"newest is {head()}); use a Kavach at least as new as the one that wrote it"
        )


def position(revision: str | None) -> int:
    """Return where a revision comes in the order (-1: no schema yet)."""
    return -1 if revision is None else known_revisions().index(revision)
