"""Which environment a secret command works on: by names, or the one a service token holds.

With KAVACH_TOKEN set to a service token, the environment comes from `GET /auth/whoami`
(service tokens cannot look organizations or groups up by name). `--env` is then checked
against the token's environment; `--org`/`--group` cannot be checked by a service token and
are refused. The active context in config.yaml is not used in that mode.

A workload signing in with its platform's OIDC token (cli.workload) names the environment
as a user does; the exchange answers its id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kavach.cli.context import resolve_env
from kavach.cli.credentials import TOKEN_ENV
from kavach.cli.errors import CliError
from kavach.cli.resources import expect_object, load_env, segment

if TYPE_CHECKING:
    from kavach.cli.app import App


@dataclass(frozen=True)
class Target:
    """An environment, by id, and how to name it to people."""

    id: str
    name: str  # `acme/web/prod`, or what a service token knows of it

    @property
    def label(self) -> str:
        """Return e.g. `environment acme/web/prod`, for messages."""
        return f"environment {self.name}"

    @property
    def path(self) -> str:
        """Return the API path of the environment's secrets."""
        return f"/environments/{segment(self.id)}/secrets"


def service_token_environment(cli: App) -> str | None:
    """Return the environment id of the service token in KAVACH_TOKEN, if it holds one."""
    if not os.environ.get(TOKEN_ENV):
        return None
    whoami = expect_object(cli.client.get("/auth/whoami"))
    token = whoami.get("token")
    if whoami.get("type") != "service_token" or not isinstance(token, dict):
        return None
    env_id = token.get("environment_id")
    if not isinstance(env_id, str) or not env_id:
        raise CliError("the server described the service token without its environment")
    return env_id


def _token_target(
    cli: App, env_id: str, org: str | None, group: str | None, env: str | None
) -> Target:
    if org is not None or group is not None:
        raise CliError(
            f"{TOKEN_ENV} holds a service token, which is bound to one environment and "
            "cannot check --org or --group; drop them (--env is checked)"
        )
    if env is None:
        return Target(env_id, env_id)
    data = expect_object(cli.client.get(f"/environments/{segment(env_id)}"))
    actual = str(data.get("name") or "")
    if env not in (actual, env_id):
        raise CliError(
            f"--env {env} disagrees with {TOKEN_ENV}: the service token is for "
            f"environment {actual or env_id!r} ({env_id})"
        )
    return Target(env_id, actual or env_id)


def resolve_target(
    cli: App, org: str | None = None, group: str | None = None, env: str | None = None
) -> Target:
    """Return the environment a secret command works on."""
    env_id = service_token_environment(cli)
    if env_id is not None:
        return _token_target(cli, env_id, org, group, env)
    ref = resolve_env(cli.context, org, group, env)
    from kavach.cli.workload import chosen_source, sign_in

    source = chosen_source(cli)
    if source is not None:
        exchanged = sign_in(cli, source, ref)
        return Target(
            exchanged.environment_id, f"{ref.organization}/{ref.secret_group}/{ref.environment}"
        )
    found = load_env(cli.client, ref)
    return Target(str(found.id), found.qualified)
