"""The dashboard's search by name: a part of a name, any case, `%` and `_` as themselves."""

from __future__ import annotations

import re
import uuid
from typing import Any

from kavach.server.access import Scope
from kavach.server.iam import visibility as seen
from kavach.server.pages import PageRequest
from tests.conftest import InProcessServer
from tests.integration.helpers import login
from tests.integration.test_dashboard import Browser
from tests.integration.test_resources import Api


async def _alice(server: InProcessServer) -> tuple[Api, Browser]:
    token = (await login(server, "alice"))["access_token"]
    return Api(server, token), Browser(server, token)


def _names(html: str) -> list[str]:
    """The names a listing page shows, in order."""
    return re.findall(r'<tr><td><a href="/ui/[^"]+">([^<]+)</a></td>', html)


async def _made(alice: Api, path: str, names: list[str]) -> list[dict[str, Any]]:
    return [await alice.call("POST", path, {"name": name}, status=201) for name in names]


async def test_organizations_groups_and_environments_are_found_by_a_part_of_their_name(
    server: InProcessServer,
) -> None:
    alice, browser = await _alice(server)
    org, _, _ = await _made(alice, "/organizations/", ["acme", "acme_corp", "acmexcorp"])
    groups = await _made(
        alice, f"/organizations/{org['id']}/secret-groups", ["web_app", "webxapp", "api"]
    )
    group = groups[0]
    await _made(alice, f"/secret-groups/{group['id']}/environments", ["prod", "pre_prod", "dev"])

    async def found(path: str, text: str) -> list[str]:
        answer = await browser.get(f"{path}?name={text}")
        assert answer.status_code == 200, answer.text
        return _names(answer.text)

    home = "/ui/"
    assert await found(home, "ACME") == ["acme", "acme_corp", "acmexcorp"]  # any case
    assert await found(home, "_") == ["acme_corp"]  # `_` is no wildcard
    assert await found(home, "e_c") == ["acme_corp"]
    assert await found(home, "%25") == []  # `%`, sent escaped, matches itself: nothing
    assert await found(home, "beta") == []
    org_page = f"/ui/organizations/{org['id']}"
    assert await found(org_page, "APP") == ["web_app", "webxapp"]
    assert await found(org_page, "b_a") == ["web_app"]
    assert await found(org_page, "%25") == []
    group_page = f"/ui/secret-groups/{group['id']}"
    assert await found(group_page, "Prod") == ["pre_prod", "prod"]
    assert await found(group_page, "e_p") == ["pre_prod"]
    assert await found(group_page, "%25") == []
    nothing = await browser.get(f"{group_page}?name=%25")
    assert "Nothing here is named like “%”." in nothing.text
    # The API's filter stays an exact name.
    exact = await alice.call("GET", f"/secret-groups/{group['id']}/environments?name=prod")
    assert [env["name"] for env in exact["items"]] == ["prod"]


async def test_a_filtered_listing_is_paged_by_its_keyset(server: InProcessServer) -> None:
    alice, _ = await _alice(server)
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    names = ["app1", "app2", "api", "myapp3", "web", "zapp"]
    groups = await _made(alice, f"/organizations/{org['id']}/secret-groups", names)
    user_id = uuid.UUID((await alice.call("GET", "/auth/me", status=200))["id"])
    org_id, group_id = uuid.UUID(org["id"]), uuid.UUID(groups[0]["id"])
    await _made(alice, f"/secret-groups/{groups[0]['id']}/environments", names)

    async def pages(listing: Any) -> list[list[str]]:
        found, cursor = [], None
        async with server.runtime.read_sessionmaker() as session:
            while True:
                rows, cursor = await listing(session, PageRequest(limit=2, cursor=cursor))
                found.append([row.row.name for row in rows])
                if cursor is None:
                    return found

    expected = [["app1", "app2"], ["myapp3", "zapp"]]
    scope = Scope(org_id, group_id)
    assert (
        await pages(lambda s, p: seen.secret_groups(s, user_id, org_id, p, containing="APP"))
        == expected
    )
    assert (
        await pages(lambda s, p: seen.environments(s, user_id, scope, p, containing="app"))
        == expected
    )
    assert await pages(lambda s, p: seen.organizations(s, user_id, p, containing="cm")) == [
        ["acme"]
    ]
