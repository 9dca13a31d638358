"""Resolving --org/--group/--env against the active context."""

from __future__ import annotations

import pytest

from kavach.cli.config import ActiveContext
from kavach.cli.context import (
    EnvRef,
    GroupRef,
    OrgRef,
    activated,
    forgotten,
    resolve_env,
    resolve_group,
    resolve_org,
)
from kavach.cli.errors import MissingContext

ACTIVE = ActiveContext(organization="acme", secret_group="web", environment="prod")


def test_the_active_context_fills_every_level() -> None:
    assert resolve_org(ACTIVE) == OrgRef("acme")
    assert resolve_group(ACTIVE) == GroupRef("acme", "web")
    assert resolve_env(ACTIVE) == EnvRef("acme", "web", "prod")


def test_flags_override_the_active_context() -> None:
    assert resolve_env(ACTIVE, env="staging") == EnvRef("acme", "web", "staging")
    assert resolve_env(ACTIVE, group="api", env="dev") == EnvRef("acme", "api", "dev")
    assert resolve_env(ACTIVE, org="other", group="g", env="e") == EnvRef("other", "g", "e")


def test_naming_the_active_org_again_keeps_the_active_group() -> None:
    assert resolve_env(ACTIVE, org="acme") == EnvRef("acme", "web", "prod")


def test_another_org_does_not_inherit_the_active_group() -> None:
    with pytest.raises(MissingContext) as caught:
        resolve_group(ACTIVE, org="other")
    assert str(caught.value) == (
        "no secret group selected in organization 'other': "
        "pass --group NAME or run `kavach group activate NAME`"
    )
    assert caught.value.exit_code == 1


def test_another_group_does_not_inherit_the_active_environment() -> None:
    with pytest.raises(MissingContext, match=r"pass --env NAME or run `kavach env activate NAME`"):
        resolve_env(ACTIVE, group="api")


def test_nothing_active_says_which_flag_to_use() -> None:
    with pytest.raises(MissingContext) as caught:
        resolve_env(ActiveContext())
    assert str(caught.value) == (
        "no organization selected: pass --org NAME or run `kavach org activate NAME`"
    )


@pytest.mark.parametrize(
    ("names", "after"),
    [
        (("acme",), ActiveContext("acme", "web", "prod")),
        (("other",), ActiveContext("other", None, None)),
        (("acme", "web"), ActiveContext("acme", "web", "prod")),
        (("acme", "api"), ActiveContext("acme", "api", None)),
        (("other", "web"), ActiveContext("other", "web", None)),
        (("other", "web", "dev"), ActiveContext("other", "web", "dev")),
    ],
)
def test_activating_keeps_deeper_levels_only_under_the_same_parents(
    names: tuple[str, ...], after: ActiveContext
) -> None:
    assert activated(ACTIVE, *names) == after


@pytest.mark.parametrize(
    ("names", "after"),
    [
        (("acme",), ActiveContext()),
        (("other",), ACTIVE),
        (("acme", "web"), ActiveContext("acme", None, None)),
        (("acme", "api"), ACTIVE),
        (("other", "web"), ACTIVE),
        (("acme", "web", "prod"), ActiveContext("acme", "web", None)),
        (("acme", "api", "prod"), ACTIVE),
    ],
)
def test_deleting_drops_only_the_active_resource_and_below(
    names: tuple[str, ...], after: ActiveContext
) -> None:
    assert forgotten(ACTIVE, *names) == after
