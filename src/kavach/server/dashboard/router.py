"""The dashboard's pages: server-rendered, the browser's session cookie, the same use cases.

Every page declares its access as an API route does (`Requirement`, or `Admitted` for the
secrets), so the gate decides it; listings come from `iam.visibility` and secrets from
`secrets.usecases`, as the API's do. A page holds no rule of its own: what a role may not
do is hidden because the gate would refuse it, and refused if asked anyway. Each area of
the dashboard is a module of its own; this one mounts them all under `/ui`.
"""

from __future__ import annotations

from fastapi import APIRouter

from kavach.server.dashboard import (
    access,
    account,
    environment,
    history,
    navigation,
    tokens,
    user_groups,
)
from kavach.server.dashboard.common import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
for area in (navigation, environment, history, access, user_groups, tokens, account):
    router.include_router(area.router)
