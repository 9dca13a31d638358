"""Dotenv: what we render, python-dotenv and bash read back exactly; what we parse."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from kavach.formats.common import FormatError, Unrepresentable
from kavach.formats.dotenv import expanding_names, parse_dotenv, render_dotenv

from .conftest import TRICKY, random_values, shell_environment

BASH_SOURCE = 'set -a; . "$FILE"; set +a'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secrets.env"
    path.write_bytes(text.encode("utf-8"))
    return path


def _random_secrets(seed: int) -> dict[str, str]:
    """Return random values that render_dotenv accepts (about a third of them)."""
    accepted = {}
    for index, value in enumerate(random_values(seed, 600)):
        try:
            render_dotenv({"X": value})
        except FormatError:
            continue
        accepted[f"R{index}"] = value
    assert len(accepted) > 150  # the check below must cover many values
    return accepted


@pytest.fixture(params=["tricky", "random-1", "random-2"])
def secrets(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "tricky":
        return dict(TRICKY)
    return _random_secrets(int(request.param.split("-")[1]))


def test_python_dotenv_reads_back_every_value(tmp_path: Path, secrets: dict[str, str]) -> None:
    path = _write(tmp_path, render_dotenv(secrets))

    assert dotenv_values(path, interpolate=False) == secrets
    # With its default interpolation, python-dotenv still agrees on every value without ${…}.
    expanded = dotenv_values(path)
    plain = {name for name in secrets if name not in expanding_names(secrets)}
    assert {name: expanded[name] for name in plain} == {name: secrets[name] for name in plain}


def test_bash_reads_back_every_value(tmp_path: Path, secrets: dict[str, str]) -> None:
    path = _write(tmp_path, render_dotenv(secrets))

    environment = shell_environment("bash", BASH_SOURCE, path)

    assert {name: environment.get(name) for name in secrets} == secrets


def test_our_parser_reads_back_every_value(secrets: dict[str, str]) -> None:
    assert parse_dotenv(render_dotenv(secrets)) == secrets


def test_quoting_is_single_unless_the_value_needs_double() -> None:
    assert render_dotenv({"A": "plain $HOME `x`"}) == "A='plain $HOME `x`'\n"
    assert render_dotenv({"A": "it's"}) == 'A="it\'s"\n'
    assert render_dotenv({"A": 'a\\\\b"c'}) == 'A="a\\\\\\\\b\\"c"\n'
    assert render_dotenv({"A": "end\\"}) == 'A="end\\\\"\n'
    assert render_dotenv({}) == ""


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("PRICE", "it's $5", "$ or ` together with"),
        ("CMD", "`it's`", "$ or ` together with"),
        ("WIN", "C:\\\\$x", "$ or ` together with"),
        ("TAIL", "$x\\", "$ or ` together with"),
        ("CRLF", "one\r\ntwo", "a carriage return"),
        ("NUL", "a\0b", "a NUL character"),
        ("my.name", "ok", "not a shell variable name"),
        ("my-name", "ok", "not a shell variable name"),
    ],
)
def test_values_no_dotenv_form_carries_are_refused_by_name(
    name: str, value: str, reason: str
) -> None:
    with pytest.raises(FormatError) as caught:
        render_dotenv({"FINE": "x", name: value})

    message = str(caught.value)
    assert f"{name} ({reason}" in message
    assert "FINE" not in message
    assert value not in message
    assert isinstance(caught.value, Unrepresentable)
    assert list(caught.value.refused) == [name]


def test_refusals_are_grouped_by_reason() -> None:
    with pytest.raises(FormatError) as caught:
        render_dotenv({"B": "a\rb", "A": "c\rd", "C": "it's $x"})

    assert "A, B (a carriage return)" in str(caught.value)
    assert "C ($ or `" in str(caught.value)


def test_expanding_names_lists_what_python_dotenv_would_expand() -> None:
    values = {"A": "${HOME}", "B": "$HOME", "C": "${X:-y}", "D": "${", "E": "x${}y"}
    assert expanding_names(values) == ["A", "C", "E"]


def test_parse_common_syntax() -> None:
    text = (
        "\ufeff# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "  INDENTED = spaced value   \n"
        "INLINE=value # comment\n"
        "HASH=#not-a-comment\n"
        "EMPTY_COMMENT= # only a comment\n"
        "EMPTY=\n"
        "SINGLE='it''s' \n"
        "SINGLE_ESC='a\\'b\\\\c\\n'\n"
        'DOUBLE="tab\\tnew\\nline \\"q\\" \\$x"  # comment\n'
        "MULTI='first\n"
        "second'\n"
        "dotted.name-ok=1\n"
    )
    with pytest.raises(FormatError, match="line 10: unexpected text after the closing quote"):
        parse_dotenv(text)
    fixed = text.replace("SINGLE='it''s' \n", "SINGLE='its' \n")
    assert parse_dotenv(fixed) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "INDENTED": "spaced value",
        "INLINE": "value",
        "HASH": "#not-a-comment",
        "EMPTY_COMMENT": "",
        "EMPTY": "",
        "SINGLE": "its",
        "SINGLE_ESC": "a'b\\c\\n",
        "DOUBLE": 'tab\tnew\nline "q" \\$x',
        "MULTI": "first\nsecond",
        "dotted.name-ok": "1",
    }
    # python-dotenv agrees on all of it.
    assert dotenv_values(stream=io.StringIO(fixed), interpolate=False) == parse_dotenv(fixed)


def test_parse_keeps_carriage_returns_inside_quotes_and_accepts_crlf_lines() -> None:
    assert parse_dotenv("A='x\r\ny'\r\nB=2\r\nC=3") == {"A": "x\r\ny", "B": "2", "C": "3"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nhunter2\n", "line 2: expected NAME=VALUE"),
        ("A=1\n\nexport hunter2\n", "line 3: expected NAME=VALUE"),
        ("A='hunter2\n", "line 1: the value's opening ' is never closed"),
        ('A=1\nB="hunter2\\"\n', "line 2: the value's opening \" is never closed"),
        ("A='hunter2' hunter3\n", "line 1: unexpected text after the closing quote"),
        ("1hunter2=x\n", "line 1: invalid secret name"),
        ("A=hunter2\nB=1\nA=hunter3\n", "line 3: A is already set on line 1"),
    ],
)
def test_parse_errors_name_the_line_never_the_text(text: str, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_dotenv(text)

    assert str(caught.value) == message or str(caught.value).startswith(message)
    assert not re.search("hunter", str(caught.value))
