"""What a page's change came to: done, or refused by the use case and said in words."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from kavach.server.wording import in_words

T = TypeVar("T")
# What a use case refuses for the request's own sake; anything else is the page's error.
REFUSALS = (Forbidden, NotFound, Conflict, ValidationFailed)


@dataclass(frozen=True)
class Notice:
    """A sentence above a form: what was done (ok) or why not (bad), and the answer's status."""

    kind: str
    text: str
    status: int = 200


def done(text: str) -> Notice:
    """Say what was done."""
    return Notice("ok", text)


def invalid(what: str, error: ValidationError) -> Notice:
    """Say why a form's input was not accepted (never the input itself)."""
    return Notice("bad", f"Not {what}: {in_words(error.errors())}", 422)


def refused(what: str, error: Conflict | Forbidden | NotFound | ValidationFailed) -> Notice:
    """Say why the use case refused; 409 for a conflict, else 422, so htmx shows it."""
    status = 409 if isinstance(error, Conflict) else 422
    return Notice("bad", f"Not {what}: {error.message}", status)


async def attempt(
    session: AsyncSession, what: str, change: Callable[[], Awaitable[T]]
) -> T | Notice:
    """Run a change in a savepoint: a refusal undoes all of it and comes back as a notice.

    The request's transaction stays usable, so the page is drawn again from what is now true.
    """
    try:
        async with session.begin_nested():
            return await change()
    except REFUSALS as error:
        return refused(what, error)
