"""`kavach provider …`: the sync targets of an environment (GitHub Actions, GCP, Azure).

Configurations hold settings (shown) and credentials (stored encrypted, never shown):
`configure` and `update` set them, `list`, `show`, `test` and `delete` manage them.
`kavach secret sync -p PROVIDER` syncs the environment's secrets to one of them.
"""

from __future__ import annotations

from kavach.cli.commands.provider import configure, manage, update
from kavach.cli.options import command_group

app = command_group(
    help="Configure where an environment's secrets sync to: github, gcp or azure "
    "(--org/--group/--env or the active one).",
    no_args_is_help=True,
)
app.add_typer(configure.app, name="configure")
app.add_typer(update.app, name="update")
app.add_typer(manage.app)
