"""Resolve --org/--group/--env against the active context saved in config.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from kavach.cli.config import ActiveContext
from kavach.cli.errors import MissingContext


@dataclass(frozen=True)
class OrgRef:
    """An organization, by name."""

    organization: str


@dataclass(frozen=True)
class GroupRef(OrgRef):
    """A secret group inside an organization."""

    secret_group: str


@dataclass(frozen=True)
class EnvRef(GroupRef):
    """An environment inside a secret group."""

    environment: str


def _missing(what: str, flag: str, noun: str, parent: str | None = None) -> MissingContext:
    where = f" in {parent}" if parent else ""
    return MissingContext(
        f"no {what} selected{where}: pass {flag} NAME or run `kavach {noun} activate NAME`"
    )


def resolve_org(active: ActiveContext, org: str | None = None) -> OrgRef:
    """Return the organization from --org, else the active one."""
    name = org or active.organization
    if not name:
        raise _missing("organization", "--org", "org")
    return OrgRef(name)


def resolve_group(
    active: ActiveContext, org: str | None = None, group: str | None = None
) -> GroupRef:
    """Return the secret group from --group, else the active one if it lives in the chosen org."""
    parent = resolve_org(active, org)
    # The active group belongs to the active organization; under another --org it means nothing.
    inherited = active.secret_group if parent.organization == active.organization else None
    name = group or inherited
    if not name:
        raise _missing("secret group", "--group", "group", f"organization {parent.organization!r}")
    return GroupRef(parent.organization, name)


def resolve_env(
    active: ActiveContext,
    org: str | None = None,
    group: str | None = None,
    env: str | None = None,
) -> EnvRef:
    """Return the environment from --env, else the active one if it lives in the chosen group."""
    parent = resolve_group(active, org, group)
    same_group = (parent.organization, parent.secret_group) == (
        active.organization,
        active.secret_group,
    )
    name = env or (active.environment if same_group else None)
    if not name:
        where = f"secret group {parent.organization}/{parent.secret_group}"
        raise _missing("environment", "--env", "env", where)
    return EnvRef(parent.organization, parent.secret_group, name)


def activated(
    active: ActiveContext, org: str, group: str | None = None, env: str | None = None
) -> ActiveContext:
    """Return the context after activating org[/group[/env]]: deeper levels survive if kept."""
    chosen = [org, group, env]
    current = [active.organization, active.secret_group, active.environment]
    depth = 3 if env else 2 if group else 1
    # A deeper active level only means something under the same parents.
    keep = chosen[:depth] == current[:depth]
    merged = [chosen[i] if i < depth else (current[i] if keep else None) for i in range(3)]
    return ActiveContext(*merged)


def forgotten(
    active: ActiveContext, org: str, group: str | None = None, env: str | None = None
) -> ActiveContext:
    """Return the context after org[/group[/env]] was deleted: drop it if it was active."""
    gone = [org, group, env]
    current = [active.organization, active.secret_group, active.environment]
    depth = 3 if env else 2 if group else 1
    if gone[:depth] != current[:depth]:
        return active
    return ActiveContext(*(current[i] if i < depth - 1 else None for i in range(3)))
