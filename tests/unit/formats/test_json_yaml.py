"""JSON and YAML secrets files: flat string maps, round trips, strict errors without values."""

from __future__ import annotations

import json

import pytest
import yaml

from kavach.formats import codec
from kavach.formats.common import FormatError
from kavach.formats.json_format import parse_json, render_json
from kavach.formats.yaml_format import parse_yaml, render_yaml

from .conftest import TRICKY, random_values

HARD = {
    **TRICKY,
    "CR": "a\rb\r\n",
    "NUL": "a\0b",
    "NEL": "x\x85y",
    "LINE_SEPARATOR": "x\u2028y",
    "BOM": "\ufeffx",
    "LOOKS_LIKE_INT": "0123",
    "LOOKS_LIKE_BOOL": "yes",
    "LOOKS_LIKE_NULL": "~",
    "LOOKS_LIKE_FLOAT": "1.10",
    "LOOKS_LIKE_DATE": "2001-12-14",
    "YAML_SYNTAX": "- [a, {b: c}] & *x ! | > %",
    "LONG": "word " * 60,
    **{f"R{i}": value for i, value in enumerate(random_values(7, 300, length=20))},
}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_round_trip(fmt: str) -> None:
    assert codec.parse(codec.render(HARD, fmt), fmt) == HARD


def test_yaml_output_reads_the_same_with_a_safe_loader() -> None:
    assert yaml.safe_load(render_yaml(HARD)) == HARD


def test_yaml_values_are_taken_as_written() -> None:
    text = "PORT: 8080\nDEBUG: yes\nZIP: 01234\nVERSION: 1.10\nEMPTY:\nQUOTED: '007'\n"
    assert parse_yaml(text) == {
        "PORT": "8080",
        "DEBUG": "yes",
        "ZIP": "01234",
        "VERSION": "1.10",
        "EMPTY": "",
        "QUOTED": "007",
    }


def test_json_output_is_an_indented_object() -> None:
    assert render_json({"B": "é", "A": "1"}) == '{\n  "B": "é",\n  "A": "1"\n}\n'
    assert json.loads(render_json(HARD)) == HARD


def test_json_refuses_non_strings_naming_them() -> None:
    text = '{"A": "ok", "PORT": 8080, "ON": true, "N": null, "L": ["hunter2"], "O": {}}'
    with pytest.raises(FormatError) as caught:
        parse_json(text)

    assert str(caught.value) == (
        "JSON: values must be strings, not: L (a list), N (null), O (an object), "
        'ON (a boolean), PORT (a number); quote them, e.g. "PORT": "8080"'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"A": "hunter2", "A": "x"}', "JSON: 'A' appears twice in one object"),
        ('{"A": "hunter2",}', "JSON: Expecting property name enclosed in double quotes"),
        ('["hunter2"]', "JSON: expected one object of NAME: value pairs, not a list"),
        ('{"1A": "hunter2"}', "JSON: invalid secret name(s) '1A'"),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_json(text)
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A: hunter2\nA: x\n", "YAML: 'A' appears twice in one mapping (line 2)"),
        ("A: 'hunter2\n", "YAML: found unexpected end of stream at line 2, column 1"),
        ("A: [hunter2]\nB: {c: d}\n", "YAML: values must be scalars, not lists or mappings: A, B"),
        ("- hunter2\n", "YAML: expected one mapping of NAME: value pairs"),
        ("bad name: hunter2\n", "YAML: invalid secret name(s) 'bad name'"),
    ],
)
def test_yaml_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_yaml(text)
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


def test_empty_yaml_is_no_secrets() -> None:
    assert parse_yaml("") == parse_yaml("# nothing\n") == parse_yaml("{}") == {}


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.json", "json"),
        ("X.JSON", "json"),
        ("a.yaml", "yaml"),
        ("a.yml", "yaml"),
        (".env", "dotenv"),
        (".env.production", "dotenv"),
        ("prod.env", "dotenv"),
        ("secrets", "dotenv"),
    ],
)
def test_guess_format(name: str, fmt: str) -> None:
    assert codec.guess_format(name) == fmt


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(FormatError, match="cannot read format 'shell'"):
        codec.parse("", "shell")
    with pytest.raises(FormatError, match="unknown format 'xml'"):
        codec.render({}, "xml")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("out.json", "json"),
        ("OUT.JSON", "json"),
        ("dir.d/a.yaml", "yaml"),
        ("a.yml", "yaml"),
        ("a.sh", "shell"),
        (".env", "dotenv"),
        ("prod.env", "dotenv"),
        (".env.local", "dotenv"),
        (".env.json", "json"),
        ("secrets", None),
        ("secrets.txt", None),
        ("prod.env.bak", None),
        (".envrc", None),
    ],
)
def test_output_format_comes_from_the_extension(name: str, fmt: str | None) -> None:
    assert codec.output_format(name) == fmt


def test_carriers_are_the_formats_that_write_every_secret() -> None:
    every = ("dotenv", "shell", "json", "yaml")
    assert codec.carriers({"A": "it's $5"}, every) == ["shell", "json", "yaml"]
    assert codec.carriers({"a.b": "1", "C": "x\r\n"}, every) == ["json", "yaml"]
    assert codec.carriers({"NUL": "a\0b"}, ("shell", "yaml", "json")) == ["yaml", "json"]
