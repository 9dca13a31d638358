"""The signed-in person's own page: who they are, their sessions, signing out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kavach.server.access import Access
from kavach.server.auth import flows as auth_flows
from kavach.server.auth import sessions
from kavach.server.auth.browser import end_session
from kavach.server.dashboard.common import PREFIX
from kavach.server.dashboard.pages import Crumb, page
from kavach.server.deps import OriginDep, SessionDep, UserDep

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SIGNED_OUT = {"HX-Redirect": "/login"}


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, principal: UserDep, session: SessionDep) -> HTMLResponse:
    """Who is signed in, and every session of theirs that still works."""
    return page(
        request,
        Access(principal=principal),
        "dashboard/account.html",
        title="Your account",
        crumbs=[Crumb("Your account", f"{PREFIX}/account")],
        person=principal.user,
        sessions=await sessions.listed(session, principal),
        most=sessions.MAX_LISTED,
    )


@router.post("/account/sessions/{session_id}/end")
async def end_one(
    session_id: str, principal: UserDep, session: SessionDep, origin: OriginDep
) -> Response:
    """End one of the person's sessions (this browser's own signs it out)."""
    ended = await sessions.end(session, principal, origin, session_id)
    if ended.id != principal.login_session.id:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    response = Response(status_code=204, headers=SIGNED_OUT)
    end_session(response)
    return response


@router.post("/sign-out")
async def sign_out(principal: UserDep, session: SessionDep, origin: OriginDep) -> Response:
    """End the browser's session and go to the sign-in page."""
    await auth_flows.logout(
        session, user=principal.user, login=principal.login_session, origin=origin
    )
    response = Response(status_code=204, headers=SIGNED_OUT)
    end_session(response)
    return response
