"""The Casbin enforcer that answers "may this role perform this action"."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import casbin

ROLES = ("viewer", "editor", "admin", "owner")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_ROLES = ("viewer", "editor")
# What a service token may ever do, whatever its role: act on its environment's secrets.
TOKEN_ACTIONS = frozenset({"env.read", "secret.read", "secret.write", "sync.run", "provider.read"})


@cache
def enforcer() -> casbin.Enforcer:
    """Load the model and policy shipped with the package, once per process."""
    package = files("kavach.server.rbac")
    return casbin.Enforcer(str(package / "model.conf"), str(package / "policy.csv"))


@cache
def role_allows(role: str, action: str) -> bool:
    """Say whether a role (with the roles it inherits) grants an action."""
    return bool(enforcer().enforce(role, action))


def highest(roles: list[str]) -> str | None:
    """Return the strongest of several roles, or None for none."""
    known = [role for role in roles if role in ROLE_RANK]
    return max(known, key=ROLE_RANK.__getitem__) if known else None


def known_actions() -> frozenset[str]:
    """Return every action the policy mentions."""
    return frozenset(str(rule[1]) for rule in enforcer().get_policy())
