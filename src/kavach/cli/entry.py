"""The `kavach` console script: a command starts without the cyclic garbage collector.

Starting a command (importing Typer, httpx and the command's modules, building it)
allocates much and frees little, so collections only cost time: about a tenth of `kavach
run`, counting the one at exit. What a command allocates is freed by reference counting;
the few cycles it leaves end with the process, which also skips tearing the interpreter
down once its output is flushed. `kavach server …` gets the collector back (the root command
enables it) and ends the usual way: a server runs long and cleans up after itself at exit.
"""

from __future__ import annotations

import gc
import os
import sys


def run() -> None:
    """Run `kavach` with the collector off; leave at once unless a command turned it on."""
    gc.disable()
    from kavach.cli.main import run as main

    try:
        main()
        code: str | int | None = 0
    except SystemExit as exit:
        code = exit.code
    if gc.isenabled() or not isinstance(code, int):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # Python reports what could not be written, as it would have
    os._exit(code)
