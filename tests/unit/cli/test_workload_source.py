"""Where a workload's OIDC token comes from, and that `kavach run` does not pass it on."""

from __future__ import annotations

from pathlib import Path

from kavach.cli.child_env import build_env
from kavach.cli.workload import Source, find_source

ACTIONS = {
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://actions.example/idtoken?api-version=2.0",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
}


def test_sources_in_order_and_none_with_kavach_token() -> None:
    every = {**ACTIONS, "KAVACH_OIDC_TOKEN": "jwt", "KAVACH_OIDC_TOKEN_FILE": "/var/run/token"}
    option = Path("/option/token")
    assert find_source(every, option) == Source("option", file=option)
    assert find_source(every) == Source("variable", value="jwt")
    no_value = {**every, "KAVACH_OIDC_TOKEN": "  "}
    assert find_source(no_value) == Source("file", file=Path("/var/run/token"))
    actions = find_source(ACTIONS)
    assert actions == Source(
        "github-actions",
        request_url=ACTIONS["ACTIONS_ID_TOKEN_REQUEST_URL"],
        request_token="request-token",
    )
    assert actions is not None and not actions.explicit
    assert find_source({"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x"}) is None  # no permission
    assert find_source({}) is None
    assert find_source({**every, "KAVACH_TOKEN": "kvt_x"}, option) is None
    assert "request-token" not in repr(actions) and "jwt" not in repr(find_source(every))


def test_kavach_run_keeps_the_oidc_token_from_its_command() -> None:
    base = {"KAVACH_OIDC_TOKEN": "jwt", "KAVACH_OIDC_TOKEN_FILE": "/var/run/token", "A": "1"}
    built = build_env(base, {})
    assert built.env == {"KAVACH_OIDC_TOKEN_FILE": "/var/run/token", "A": "1"}
    assert built.withheld == ["KAVACH_OIDC_TOKEN"]
    assert build_env(base, {}, pass_credentials=True).env == base
