"""A secret group's environments side by side: which names each sets, where values differ.

Values are compared on the server (`SecretUseCases.compare_latest`: each environment
admitted at the gate and its read audited) and never sent: a cell says missing, or a letter
shared by the environments holding the same value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from kavach.server.access import Access
from kavach.server.dashboard.common import PREFIX, READ, resource_context
from kavach.server.dashboard.pages import Crumb, page
from kavach.server.deps import OriginDep, SessionDep, runtime_of
from kavach.server.iam import visibility as seen
from kavach.server.iam.models import Environment, SecretGroup
from kavach.server.pages import PageRequest
from kavach.server.rbac.deps import Requirement, ticket_for
from kavach.server.secrets.comparison import Compared

# Columns side by side: what a table can show, and how many reads one page makes.
MAX_COMPARED = 8
# Environments offered to pick from: one page of the group's listing.
MAX_CHOICES = 100
# Names shown: a row is about 320 bytes and its name at 8 columns (a name is at most 256
# characters), so a page stays under 100 KB.
MAX_ROWS = 150
DIFFERENCES = "differences"

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@dataclass(frozen=True)
class Choice:
    """An environment that can be compared, and whether it is."""

    id: uuid.UUID
    name: str
    picked: bool


@dataclass(frozen=True)
class Column:
    """A compared environment: its name and its page."""

    name: str
    url: str


@router.get("/secret-groups/{id}/compare", response_class=HTMLResponse)
async def compare(
    request: Request,
    access: Annotated[Access, Depends(Requirement("env.read", "secret_group"))],
    session: SessionDep,
    origin: OriginDep,
    env: Annotated[list[str] | None, Query()] = None,
    only: str | None = None,
) -> HTMLResponse:
    """Compare the picked environments (by default the first ones) that the caller may read."""
    group, scope = access.resource, access.scope
    assert isinstance(group, SecretGroup)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    listed, more = await seen.environments(
        session, access.user.user.id, scope, PageRequest(limit=MAX_CHOICES)
    )
    envs = [item.row for item in listed]
    picked = _picked(envs, env or [])
    compared, beyond = picked[:MAX_COMPARED], picked[MAX_COMPARED:]
    tickets = [ticket_for(request, READ, e.id) for e in compared]
    result = await runtime_of(request).secrets.compare_latest(tickets, origin)
    by_id = {e.id: e for e in envs}
    left_out = [(by_id[i].name, why) for i, why in result.left_out.items()]
    left_out += [(e.name, f"at most {MAX_COMPARED} are compared at once") for e in beyond]
    rows = [row for row in result.rows if only != DIFFERENCES or row.differs or row.missing]
    context = await resource_context(session, access, "/compare")
    context["crumbs"].append(Crumb("Compare", request.url.path))
    chosen = {e.id for e in compared}
    return page(
        request,
        access,
        "dashboard/compare.html",
        **{**context, "title": f"Compare {group.name}"},
        choices=[Choice(e.id, e.name, e.id in chosen) for e in envs],
        more_choices=more is not None,
        most=MAX_COMPARED,
        only_differences=only == DIFFERENCES,
        columns=[Column(by_id[i].name, f"{PREFIX}/environments/{i}/") for i in result.environments],
        left_out=left_out,
        counts=_counts(result.rows),
        rows=rows[:MAX_ROWS],
        hidden_rows=max(len(rows) - MAX_ROWS, 0),
    )


def _picked(envs: list[Environment], wanted: list[str]) -> list[Environment]:
    """Return the listed environments asked for (none asked: all), in the listing's order.

    Only listed ones: an id the caller does not see is ignored, as if never asked.
    """
    asked = set(wanted)
    return [e for e in envs if str(e.id) in asked] if asked else envs


def _counts(rows: tuple[Compared, ...]) -> dict[str, int]:
    """Count the names, and those whose values differ or that some environment lacks."""
    return {
        "names": len(rows),
        "differ": sum(row.differs for row in rows),
        "missing": sum(row.missing > 0 for row in rows),
        "same": sum(not row.differs and not row.missing for row in rows),
    }
