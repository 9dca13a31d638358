"""The rules of OpenID sign-in that need no provider: settings, admission, mapping, claims."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kavach.server.errors import ConfigurationError
from kavach.server.oidc.accounts import SignInRefused, admit, mapped_groups
from kavach.server.oidc.flows import safe_return
from kavach.server.oidc.relying import Person, person_of
from kavach.server.settings import (
    AuthSettings,
    Mode,
    OidcProvider,
    Settings,
    check_startable,
)


def _provider(**fields: Any) -> OidcProvider:
    base: dict[str, Any] = {
        "name": "corp",
        "issuer": "https://sso.example.com",
        "client_id": "kavach",
        "allow_all_users": True,
    }
    return OidcProvider(**{**base, **fields})


def _person(**fields: Any) -> Person:
    base: dict[str, Any] = {
        "subject": "s",
        "login": "ann",
        "email": "ann@example.com",
        "email_verified": True,
        "name": None,
        "groups": (),
    }
    return Person(**{**base, **fields})


def test_a_provider_must_say_who_may_sign_in() -> None:
    with pytest.raises(ValidationError, match="say who may sign in"):
        _provider(allow_all_users=False)
    with pytest.raises(ValidationError, match="asymmetric"):
        _provider(id_token_alg="HS256")
    with pytest.raises(ValidationError, match="organization/group"):
        _provider(group_map={"devs": "no-slash"})
    with pytest.raises(ValidationError, match="distinct names"):
        AuthSettings(oidc_providers=[_provider(), _provider()])


def test_production_needs_https_for_sign_in() -> None:
    settings = Settings(
        mode=Mode.PRODUCTION,
        db={"database_url": "postgresql://db/kavach"},
        auth=AuthSettings(oidc_providers=[_provider(issuer="http://sso.example.com")]),
    )
    with pytest.raises(ConfigurationError) as refused:
        check_startable(settings)
    assert "issuers must be https:// URLs: corp" in refused.value.message
    assert "needs KAVACH_PUBLIC_URL" in refused.value.message


def test_admission_by_verified_domain_or_group() -> None:
    corp = _provider(
        allow_all_users=False, allowed_email_domains=["Example.com"], required_groups=["ops"]
    )
    admit(corp, _person())
    admit(corp, _person(email="x@other.org", groups=("ops",)))
    with pytest.raises(SignInRefused, match=r"verified address at example\.com; or membership"):
        admit(corp, _person(email_verified=False))
    with pytest.raises(SignInRefused):
        admit(corp, _person(email="ann@example.com.evil.org"))


def test_unmarked_addresses_count_only_where_trusted() -> None:
    claims = {"sub": "s", "email": "Ann@Example.com", "preferred_username": "ann"}
    assert person_of(_provider(), claims).email_verified is False
    trusted = person_of(_provider(trust_unmarked_email=True), claims)
    assert (trusted.email, trusted.email_verified) == ("ann@example.com", True)
    marked = person_of(_provider(trust_unmarked_email=True), {**claims, "email_verified": False})
    assert marked.email_verified is False


def test_groups_map_by_pairs_and_by_prefix() -> None:
    corp = _provider(group_map={"Eng": "acme/backend"}, group_prefix="kavach:")
    found = mapped_groups(corp, ["Eng", "kavach:acme/ops", "kavach:bad", "other"])
    assert found == {("acme", "backend"), ("acme", "ops")}
    assert person_of(corp, {"sub": "s", "groups": "a b"}).groups == ("a", "b")


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/environments/1", "/environments/1"),
        ("https://evil.example/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        # Browsers drop tabs and line breaks from an address: each would leave //evil.
        ("/\t/evil.example", None),
        ("/\n/evil.example", None),
        ("/ui/?name=%09", "/ui/?name=%09"),
        ("/" + "a" * 600, None),
        ("", None),
    ],
)
def test_only_paths_on_this_server_are_returned_to(asked: str, kept: str | None) -> None:
    assert safe_return(asked) == kept
