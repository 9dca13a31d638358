"""The signed-in person's own session."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from kavach.server.auth import flows as auth_flows
from kavach.server.auth.browser import end_session
from kavach.server.deps import OriginDep, SessionDep, UserDep

router = APIRouter()


@router.post("/sign-out")
async def sign_out(principal: UserDep, session: SessionDep, origin: OriginDep) -> Response:
    """End the browser's session and go to the sign-in page."""
    await auth_flows.logout(
        session, user=principal.user, login=principal.login_session, origin=origin
    )
    response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    end_session(response)
    return response
