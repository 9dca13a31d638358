"""`kavach secret …`: stage, commit, read, compare and export an environment's secrets.

Changes are staged per environment (`add`, `remove`, `status`, `reset`, `rebase`) and
committed as a version (`commit`), or committed straight from a file (`push`). Versions are
listed, shown, compared and rolled back; values are masked unless --reveal.
"""

from __future__ import annotations

from kavach.cli.commands.secret import (
    change,
    commit,
    current,
    diff,
    stage,
    sync,
    values,
    versions,
)
from kavach.cli.options import command_group

app = command_group(
    help="Stage, commit, read and export an environment's secrets (--org/--group/--env or "
    "the active one; with KAVACH_TOKEN, the token's environment).",
    no_args_is_help=True,
)
app.add_typer(current.app)
app.add_typer(change.app)
app.add_typer(stage.app)
app.add_typer(commit.app)
app.add_typer(versions.app)
app.add_typer(diff.app)
app.add_typer(values.app)
app.add_typer(sync.app)
