"""The dashboard's pages: server-rendered, the browser's session cookie, the same use cases.

Every page declares its access as an API route does (`Requirement`, or `Admitted` for the
secrets), so the gate decides it; listings come from `iam.visibility` and secrets from
`secrets.usecases`, as the API's do. A page holds no rule of its own: what a role may not
do is hidden because the gate would refuse it, and refused if asked anyway. Each area of
the dashboard is a module of its own, its routes under `/ui`; this one mounts them all.
"""

from __future__ import annotations

from fastapi import APIRouter

from kavach.server.dashboard import (
    access,
    account,
    audit,
    compare,
    environment,
    history,
    navigation,
    sync,
    tokens,
    trusts,
    user_groups,
)

# Each area of the dashboard, in the order its routes are matched.
AREAS = (
    navigation,
    environment,
    history,
    compare,
    access,
    user_groups,
    tokens,
    trusts,
    sync,
    audit,
    account,
)

router = APIRouter()
for area in AREAS:
    router.include_router(area.router)
