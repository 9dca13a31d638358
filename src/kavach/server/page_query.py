"""A listing's page as an HTTP query asks for it: ?limit= and ?cursor= (see pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from kavach.server.pages import DEFAULT_LIMIT, MAX_CURSOR, MAX_LIMIT, PageRequest


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page, at most 1,000.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR, description="The `next` of the page before this one."),
    ] = None,
) -> PageRequest:
    """Read a page's limit and cursor from the query."""
    return PageRequest(limit, cursor)


PageDep = Annotated[PageRequest, Depends(page_request)]
