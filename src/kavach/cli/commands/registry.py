"""The root's commands: the module each lives in, and what `kavach --help` says of it.

`kavach` imports a command's module only when that command runs or shows its help, so the
root help is written from this table; `tests/unit/cli/test_lazy_commands.py` checks that
each summary and panel is the loaded command's own. To add a command or a noun group, add
it here (a group: `group=True`, its module's `app` is the group).
"""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS_PANEL = "Commands"  # where commands without a panel of their own are listed


@dataclass(frozen=True)
class Entry:
    """One root command: its module, its help's first sentence and its help panel."""

    module: str
    summary: str
    panel: str = COMMANDS_PANEL
    group: bool = False  # the module's `app` is this group (else it holds this command)
    attribute: str = "app"  # the module's Typer app that holds the command


_COMMANDS = "kavach.cli.commands"

COMMANDS: dict[str, Entry] = {
    "server": Entry(
        f"{_COMMANDS}.server",
        "Run and administer a Kavach server on this machine (needs the server extra).",
        group=True,
    ),
    "login": Entry(
        f"{_COMMANDS}.auth",
        "Log in to a Kavach server (device flow), or approve or deny another login for yourself.",
        "Session",
    ),
    "logout": Entry(
        f"{_COMMANDS}.auth",
        "End the session on the server and forget the local credentials.",
        "Session",
    ),
    "status": Entry(
        f"{_COMMANDS}.auth",
        "Show the server, who you are logged in as, and the active context.",
        "Session",
    ),
    "setup": Entry(
        f"{_COMMANDS}.setup",
        "Write .kavach.yaml here: the org, group and env (and server) used in this directory.",
        "Session",
    ),
    "version": Entry(f"{_COMMANDS}.meta", "Show the version of this command-line tool.", "About"),
    "info": Entry(
        f"{_COMMANDS}.meta",
        "Show the server's version, identity provider, mode and health.",
        "About",
    ),
    "org": Entry(f"{_COMMANDS}.org", "Manage organizations.", "Resources", group=True),
    "group": Entry(
        f"{_COMMANDS}.group",
        "Manage secret groups (in --org or the active organization).",
        "Resources",
        group=True,
    ),
    "env": Entry(
        f"{_COMMANDS}.env",
        "Manage environments (in --org/--group or the active secret group).",
        "Resources",
        group=True,
    ),
    "secrets": Entry(
        f"{_COMMANDS}.secret.current",
        "Show the environment's secrets now (or of --version), values masked unless --reveal.",
        "Secrets",
        attribute="root",
    ),
    "secret": Entry(
        f"{_COMMANDS}.secret",
        "Stage, commit, read and export an environment's secrets (--org/--group/--env or the "
        "active one; with KAVACH_TOKEN, the token's environment).",
        "Secrets",
        group=True,
    ),
    "provider": Entry(
        f"{_COMMANDS}.provider",
        "Configure where an environment's secrets sync to: github, gcp or azure "
        "(--org/--group/--env or the active one).",
        "Secrets",
        group=True,
    ),
    "run": Entry(
        f"{_COMMANDS}.run",
        "Run a command with the secrets as environment variables; exit with its status.",
        "Secrets",
    ),
    "user-group": Entry(
        f"{_COMMANDS}.user_group",
        "Manage user groups (in --org or the active organization).",
        "Access",
        group=True,
    ),
    "token": Entry(
        f"{_COMMANDS}.token",
        "Manage service tokens for an environment (--org/--group/--env or the active one).",
        "Access",
        group=True,
    ),
    "trust": Entry(
        f"{_COMMANDS}.trust",
        "Manage workload trusts for an environment (--org/--group/--env or the active one).",
        "Access",
        group=True,
    ),
    "webhook": Entry(
        f"{_COMMANDS}.webhook",
        "Manage webhooks: HTTPS endpoints that receive signed JSON events (commits, rollbacks, "
        "syncs, members granted or revoked) of an organization (--org or the active one: "
        "everything in it) or of one environment (--env, in --group).",
        "Access",
        group=True,
    ),
    "audit": Entry(
        f"{_COMMANDS}.audit",
        "Read and verify the audit trail (owners and admins of what you name).",
        "Access",
        group=True,
    ),
}
