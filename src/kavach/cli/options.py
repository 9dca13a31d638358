"""Options shared by many commands, declared once as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
OrgOption = Annotated[
    str | None, typer.Option("--org", help="Organization (default: the active one).")
]
GroupOption = Annotated[
    str | None, typer.Option("--group", help="Secret group (default: the active one).")
]
EnvOption = Annotated[
    str | None, typer.Option("--env", help="Environment (default: the active one).")
]
RevealFlag = Annotated[
    bool, typer.Option("--reveal", help="Show secret values instead of masking them.")
]
