"""Output: tables for people, JSON with --json, and the one-line error report.

Everything shown goes through the App's consoles (console.SafeConsole), literal() or
safe_text, so text from a server or a file never reaches a terminal as control characters.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from kavach.cli.safe_text import dumps, neutralize

if TYPE_CHECKING:
    from rich.text import Text

    from kavach.cli.app import App

MASK = "••••••"  # fixed width, so the mask does not reveal a value's length
# Only values at least this long show their first two characters, to tell them apart.
MASK_HINT_LENGTH = 16
EMPTY_CELL = "-"
ACTIVE_MARK = "*"

Columns = Sequence[tuple[str, str]]  # (key in each row, column header)


def mask(value: str | None, *, reveal: bool = False) -> str:
    """Return `value` for display: itself with --reveal, else a fixed-width mask.

    A value of MASK_HINT_LENGTH characters or more keeps its first two (`sk••••••`) when
    they are visible ASCII characters; a shorter value shows nothing but the mask. An empty
    value is revealed as `""`.
    """
    if value is None:
        return EMPTY_CELL
    if reveal:
        return value or '""'  # shown, so an empty value is not mistaken for a missing one
    head = value[:2]
    visible = head.isascii() and head.isprintable() and not any(c.isspace() for c in head)
    return head + MASK if len(value) >= MASK_HINT_LENGTH and visible else MASK


def cell(value: Any) -> str:
    """Format one value for a table cell."""
    if value is None or value == "":
        return EMPTY_CELL
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value) or EMPTY_CELL
    return str(value)


def literal(text: str) -> Text:
    """Return `text` as Text shown as it is: never read as rich markup, controls escaped."""
    from rich.text import Text

    return Text(neutralize(text))


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout, unstyled so it pipes into jq."""
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def table(
    app: App,
    rows: Sequence[Mapping[str, Any]],
    columns: Columns,
    *,
    title: str | None = None,
    empty: str = "Nothing to show.",
    mark: str | None = None,
) -> None:
    """Print `rows` as a table with the given (key, header) columns.

    With `mark`, a first unlabelled column shows ACTIVE_MARK on rows whose `mark` key is true.
    """
    if not rows:
        app.err.print(empty, markup=False)
        return
    from rich.table import Table

    grid = Table(title=title, header_style="bold", title_justify="left")
    if mark is not None:
        grid.add_column("", no_wrap=True)
    for _, header in columns:
        grid.add_column(header, overflow="fold")
    for row in rows:
        # Text, not str: values like "[red]" are data, not rich markup.
        cells = [literal(cell(row.get(key))) for key, _ in columns]
        if mark is not None:
            cells.insert(0, literal(ACTIVE_MARK if row.get(mark) else ""))
        grid.add_row(*cells)
    app.out.print(grid)


def when(value: Any) -> Any:
    """Return an ISO 8601 timestamp string as a datetime (shown to the second), else `value`."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


def fields(app: App, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
    """Print label/value pairs as a two-column table without a header."""
    from rich.table import Table

    grid = Table(title=title, show_header=False, box=None, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(label, literal(cell(value)))
    app.out.print(grid)


def output(app: App, data: Any, human: Callable[[], None]) -> None:
    """Print `data` as JSON with --json, else call `human` to print it for people."""
    if app.json:
        print_json(data)
    else:
        human()


def listing(items: Sequence[Any], following: str | None = None) -> dict[str, Any]:
    """Return `items` in the one JSON shape of lists: `{"items": [...], "next": ...}`."""
    return {"items": list(items), "next": following}


def note(app: App, message: str) -> None:
    """Print a progress line on stderr (stdout stays clean for data) and flush it now."""
    app.err.print(message, markup=False, soft_wrap=True)
    app.err.file.flush()


def warn(app: App, message: str) -> None:
    """Print a warning line on stderr."""
    app.err.print(f"Warning: {message}", markup=False, soft_wrap=True, style="yellow")


def error(exc: BaseException, *, verbose: bool = False, message: str | None = None) -> None:
    """Report `exc` (or `message` about it) as ONE line on stderr; the traceback with --verbose."""
    if verbose:
        sys.stderr.write(neutralize("".join(traceback.format_exception(exc))))
    line = neutralize(" ".join((message or str(exc)).split())) or type(exc).__name__
    typer.secho(f"Error: {line}", err=True, fg="red")
