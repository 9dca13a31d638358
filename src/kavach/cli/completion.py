"""Dynamic shell completion: names of organizations, groups, environments and secrets.

A TAB must answer at once, so names are kept for a minute in the state directory
(`cache/completion.json`, 0600, names only, never a value) and a completion never prints
an error: whatever fails, it offers nothing. Secret names come from the names-only route,
so a TAB reads no value and leaves no read of values in the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from kavach.cli.app import App

CACHE_FILE = "completion.json"
FRESH_SECONDS = 60.0
Names = list[str]


def _app(ctx: typer.Context) -> App:
    """Return an App as the root command would build it (its callback does not run on TAB)."""
    from kavach.cli.app import App, Runtime
    from kavach.cli.config import home_dir

    root = ctx.find_root()
    server = root.params.get("server")
    runtime = root.obj if isinstance(root.obj, Runtime) else None  # tests swap the transport
    return App(
        home=home_dir(),
        server=server if isinstance(server, str) else None,
        quiet=True,
        runtime=runtime,
    )


def _cached(cli: App, key: str, fetch: Callable[[], Names]) -> Names:
    """Return the names kept under `key` if fresh, else fetch and keep them."""
    from kavach.cli.config import atomic_write

    path = cli.home / "cache" / CACHE_FILE
    try:
        kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    entry = kept.get(key)
    if isinstance(entry, dict) and time.time() - float(entry.get("at", 0)) < FRESH_SECONDS:
        return [str(name) for name in entry.get("names", [])]
    names = fetch()
    kept = {k: v for k, v in kept.items() if isinstance(v, dict)} | {
        key: {"at": time.time(), "names": names}
    }
    atomic_write(path, json.dumps(kept))
    return names


def _offer(complete: Callable[[App, typer.Context], tuple[str, Callable[[], Names]]]) -> Any:
    """Wrap a completer: names starting with what was typed; nothing on any failure."""

    def offered(ctx: typer.Context, incomplete: str) -> Names:
        try:
            cli = _app(ctx)
            key, fetch = complete(cli, ctx)
            names = _cached(cli, f"{cli.configured_server()}|{key}", fetch)
        except Exception:
            return []
        return [name for name in names if name.startswith(incomplete)]

    return offered


def _where(cli: App, ctx: typer.Context) -> tuple[str | None, str | None, str | None]:
    """Return the org, group and env the command line or the default context names."""
    params, context = ctx.params, cli.context
    org = params.get("org") or context.organization
    group = params.get("group") or (context.secret_group if org == context.organization else None)
    same_group = (org, group) == (context.organization, context.secret_group)
    env = params.get("env") or (context.environment if same_group else None)
    return org, group, env


def _names(rows: list[dict[str, Any]]) -> Names:
    return sorted(str(row["name"]) for row in rows if isinstance(row.get("name"), str))


@_offer
def organizations(cli: App, ctx: typer.Context) -> tuple[str, Callable[[], Names]]:
    """Complete an organization's name."""
    from kavach.cli.resources import list_all

    return "orgs", lambda: _names(list_all(cli.client, "/organizations/"))


@_offer
def groups(cli: App, ctx: typer.Context) -> tuple[str, Callable[[], Names]]:
    """Complete a secret group's name, in --org or the default organization."""
    from kavach.cli.context import OrgRef
    from kavach.cli.resources import list_all, load_org

    org, _, _ = _where(cli, ctx)
    if org is None:
        return "none", list

    def fetch() -> Names:
        found = load_org(cli.client, OrgRef(org))
        return _names(list_all(cli.client, f"{found.path}/secret-groups"))

    return f"groups|{org}", fetch


@_offer
def environments(cli: App, ctx: typer.Context) -> tuple[str, Callable[[], Names]]:
    """Complete an environment's name, in --org/--group or the default group."""
    from kavach.cli.context import GroupRef
    from kavach.cli.resources import list_all, load_group

    org, group, _ = _where(cli, ctx)
    if org is None or group is None:
        return "none", list

    def fetch() -> Names:
        found = load_group(cli.client, GroupRef(org, group))
        return _names(list_all(cli.client, f"{found.path}/environments"))

    return f"envs|{org}/{group}", fetch


@_offer
def secrets(cli: App, ctx: typer.Context) -> tuple[str, Callable[[], Names]]:
    """Complete a secret's name in the command's environment (names only, no values)."""
    from kavach.cli.resources import expect_object
    from kavach.cli.target import resolve_target

    org, group, env = _where(cli, ctx)

    def fetch() -> Names:
        target = resolve_target(cli, org, group, env)
        found = expect_object(cli.client.get(f"{target.path}/names")).get("names")
        return [str(name) for name in found] if isinstance(found, list) else []

    return f"secrets|{org}/{group}/{env}", fetch


def formats(incomplete: str) -> Names:
    """Complete --format of an export."""
    from kavach.formats.codec import FORMATS

    return [name for name in FORMATS if name.startswith(incomplete)]


def input_formats(incomplete: str) -> Names:
    """Complete --format of a file read in (dotenv, json, yaml)."""
    from kavach.formats.codec import INPUT_FORMATS

    return [name for name in INPUT_FORMATS if name.startswith(incomplete)]
