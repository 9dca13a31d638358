"""Imported before httpx: keeps `import httpx` from importing httpx's own command-line tool.

httpx's package imports its `httpx` console script (click, pygments, rich.syntax…) when it
is imported: about 50 ms of every kavach command's start-up, for a tool kavach never runs.
A placeholder module stands in for it; nothing changes once httpx is imported.
"""

from __future__ import annotations

import sys
from types import ModuleType

PLACEHOLDER = "httpx._main"


def _main() -> None:
    raise RuntimeError("httpx's command-line tool is not loaded in kavach")


def skip_httpx_command_line_tool() -> None:
    """Put the placeholder in sys.modules unless httpx (or its tool) is already imported."""
    if "httpx" in sys.modules or PLACEHOLDER in sys.modules:
        return
    placeholder = ModuleType(PLACEHOLDER)
    placeholder.main = _main  # type: ignore[attr-defined]
    sys.modules[PLACEHOLDER] = placeholder


skip_httpx_command_line_tool()
