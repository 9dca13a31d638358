"""Output: tables for people, JSON with --json, and the one-line error report.

Everything shown goes through the App's consoles (console.SafeConsole), literal() or
safe_text, so text from a server or a file never reaches a terminal as control characters.
"""

from __future__ import annotations

import os
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
        note(app, empty)
        return
    if not app.stdout_is_terminal():
        # Pipes and files get tab-separated columns under one header line: nothing to parse.
        if title:
            note(app, title)  # for a person watching; stdout holds only the table
        headers = ([""] if mark is not None else []) + [_plain_cell(h) for _, h in columns]
        lines = [headers]
        for row in rows:
            values = [_plain_cell(cell(row.get(key))) for key, _ in columns]
            lines.append(([ACTIVE_MARK if row.get(mark) else ""] if mark else []) + values)
        sys.stdout.write("".join("\t".join(line) + "\n" for line in lines))
        sys.stdout.flush()
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
    if not app.stdout_is_terminal():
        if title:
            note(app, title)
        text = "".join(
            f"{neutralize(label)}: {_plain_cell(cell(value))}\n" for label, value in pairs
        )
        sys.stdout.write(text)
        sys.stdout.flush()
        return
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


def _plain_cell(text: str) -> str:
    """Return a cell for a tab-separated line: controls, tabs and newlines escaped."""
    return neutralize(text).replace("\t", "\\t").replace("\n", "\\n")


def note(app: App, message: str) -> None:
    """Print a progress line on stderr (stdout stays clean for data), unless --quiet."""
    if app.quiet:
        return
    app.err.print(message, markup=False, soft_wrap=True)
    app.err.file.flush()


def warn(app: App, message: str) -> None:
    """Print a warning line on stderr."""
    app.err.print(f"Warning: {message}", markup=False, soft_wrap=True, style="yellow")


def color_allowed(choice: bool | None) -> bool:
    """Tell whether colour may be used: never with --no-color or a non-empty NO_COLOR."""
    if choice is False:
        return False
    return not os.environ.get("NO_COLOR")


def error(
    exc: BaseException,
    *,
    verbose: bool = False,
    message: str | None = None,
    as_json: bool = False,
    color: bool = True,
    code: str | None = None,
) -> None:
    """Report `exc` as ONE line on stderr (JSON with --json); the traceback with --verbose."""
    if verbose:
        sys.stderr.write(neutralize("".join(traceback.format_exception(exc))))
    if as_json:
        text = message or _message_of(exc)
        found = code or getattr(exc, "code", None) or getattr(exc, "kind", "unexpected_error")
        report = {"error": " ".join(text.split()), "error_code": found}
        sys.stderr.write(dumps(report, indent=None) + "\n")  # one line, as a log reader wants
        return
    line = neutralize(" ".join((message or str(exc)).split())) or type(exc).__name__
    typer.secho(f"Error: {line}", err=True, fg="red" if color else None)


def _message_of(exc: BaseException) -> str:
    """Return an error's message without the code shown after it on one line."""
    found = getattr(exc, "message", None)
    if isinstance(found, str):
        return found
    formatted = getattr(exc, "format_message", None)  # Click's usage errors
    return str(formatted()) if callable(formatted) else str(exc) or type(exc).__name__
