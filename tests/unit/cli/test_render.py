"""Output helpers: masking, cells, JSON and the one-line error."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kavach.cli import render
from kavach.cli.app import App, Runtime
from kavach.cli.console import SafeConsole
from kavach.cli.errors import ApiError


def test_mask_hides_value_and_length() -> None:
    assert render.mask("hunter2") == render.mask("a much longer secret value") == "••••••"
    assert render.mask("") == render.mask("fifteen chars!!") == "••••••"
    assert render.mask("hunter2", reveal=True) == "hunter2"
    assert render.mask("", reveal=True) == '""'
    assert render.mask(None) == "-"


def test_mask_shows_two_characters_of_long_values_only() -> None:
    assert render.mask("sk_live_0123456789") == "sk••••••"
    assert render.mask("sk_live_0123456789abcdefghij") == "sk••••••"  # length not revealed
    assert render.mask("sk_live_0123456") == "••••••"  # 15 characters: too short
    # Whitespace or non-ASCII at the start is not shown either.
    assert render.mask("\nsecret-value-long") == "••••••"
    assert render.mask(" secret-value-long") == "••••••"
    assert render.mask("ésecret-value-long") == "••••••"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("", "-"),
        (True, "yes"),
        (False, "no"),
        (["a", "b"], "a, b"),
        (datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=UTC), "2025-01-02T03:04:05+00:00"),
        (3, "3"),
    ],
)
def test_cell(value: object, shown: str) -> None:
    assert render.cell(value) == shown


def test_print_json_is_plain_and_parseable(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_json({"when": datetime(2025, 1, 1, tzinfo=UTC), "name": "é"})
    out = capsys.readouterr().out
    assert json.loads(out) == {"when": "2025-01-01 00:00:00+00:00", "name": "é"}
    assert "\x1b[" not in out


def test_error_is_one_line_even_for_multi_line_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render.error(ApiError(400, "validation_failed", "name is\ntoo long"))
    assert capsys.readouterr().err == "Error: name is too long (validation_failed)\n"


def test_tables_show_values_literally_not_as_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = App(home=tmp_path)
    render.table(app, [{"name": "[bold]TOKEN[/bold]"}], [("name", "Name")])
    render.fields(app, [("Value", "[red]x[/red]")])
    out = capsys.readouterr().out
    assert "[bold]TOKEN[/bold]" in out
    assert "[red]x[/red]" in out


def test_an_empty_table_says_so_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    render.table(App(home=tmp_path), [], [("name", "Name")], empty="No secrets.")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "No secrets.\n")


def test_a_marked_table_flags_active_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"name": "acme", "active": False}, {"name": "beta", "active": True}]
    render.table(TERMINAL(tmp_path), rows, [("name", "Name")], mark="active")
    body = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in line.strip("│").split("│")] for line in body] == [
        ["", "acme"],
        ["*", "beta"],
    ]
    render.table(App(home=tmp_path), rows, [("name", "Name")], mark="active")
    assert capsys.readouterr().out == "\tName\n\tacme\n*\tbeta\n"


def TERMINAL(home: Path) -> App:  # noqa: N802 - reads as the kind of App it makes
    """Return an App whose stdout counts as a terminal (rich tables, titles)."""
    return App(home=home, verbose=True, runtime=Runtime(stdout_is_terminal=lambda: True))


def test_a_pipe_gets_tab_separated_rows_without_titles_boxes_or_wrapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = "x" * 200
    rows: list[dict[str, str | None]] = [
        {"name": "a b", "value": long},
        {"name": "tab\there", "value": None},
    ]
    render.table(App(home=tmp_path), rows, [("name", "Name"), ("value", "Value")], title="T")
    render.fields(App(home=tmp_path), [("Label", long)], title="T")
    assert capsys.readouterr().out == (f"Name\tValue\na b\t{long}\ntab\\there\t-\nLabel: {long}\n")


def test_when_parses_iso_timestamps_only() -> None:
    assert render.when("2025-01-02T03:04:05.678Z") == datetime(2025, 1, 2, 3, 4, 5, 678000, UTC)
    assert render.cell(render.when("2025-01-02T03:04:05.678Z")) == "2025-01-02T03:04:05+00:00"
    assert render.when("soon") == "soon"
    assert render.when(None) is None


HOSTILE = "a\x1b]0;pwned\x07\x1b[2J\x9b1m\u202eb\u2066c\x7fd\re"
ESCAPED = "a\\x1b]0;pwned\\x07\\x1b[2J\\x9b1m\\u202eb\\u2066c\\x7fd\\x0de"


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_everything_printed_shows_control_characters_escaped(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    terminal: bool,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    app = TERMINAL(tmp_path) if terminal else App(home=tmp_path, verbose=True)
    render.table(app, [{"name": HOSTILE}], [("name", HOSTILE)], title=HOSTILE)
    render.fields(app, [(HOSTILE, HOSTILE)], title=HOSTILE)
    app.out.print(HOSTILE, markup=False, soft_wrap=True)
    render.note(app, HOSTILE)
    render.warn(app, HOSTILE)
    app.log(HOSTILE)
    render.error(ApiError(409, "conflict", HOSTILE), verbose=True)
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert not set(stream) & set(HOSTILE) - set("abcde]0;pwned[2J1m")
    # On a terminal: titles, header, cells, label, plain line; in a pipe, no titles.
    assert captured.out.count(ESCAPED) == (7 if terminal else 5)
    # Note, warn, log and the traceback; in a pipe, the two titles too.
    assert captured.err.count(ESCAPED) == (4 if terminal else 6)
    # One line: the carriage return, being whitespace, became a space there.
    one_line = ESCAPED.replace("\\x0d", " ")
    assert captured.err.endswith(f"Error: {one_line} (conflict)\n")


def test_json_spells_control_characters_as_escapes_and_keeps_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = {HOSTILE: [HOSTILE, "\U000e0041\u200b\ud800"], "plain": "é 😀\n"}
    render.print_json(data)
    out = capsys.readouterr().out
    assert json.loads(out) == data
    assert out.isascii() is False  # é and 😀 stay as they are
    assert not {"\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x7f", "\r", "\u200b"} & set(out)
    assert "\\udb40\\udc41" in out  # a tag character, as a surrogate pair


def test_a_spinner_shows_its_text_escaped_and_not_as_markup() -> None:
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=True, width=300)
    with console.status(f"Syncing to [link=https://x.test]{HOSTILE}[/link]"):
        pass
    shown = out.getvalue()
    assert ESCAPED in shown
    assert "\x1b]0;pwned" not in shown
    assert "\x1b]8;" not in shown  # no hyperlink from the markup
    assert "[link=https://x.test]" in shown
