"""Pick a secrets file format by name or file name, and parse or render with it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Literal, get_args

from kavach.formats.common import FormatError

Format = Literal["dotenv", "json", "yaml", "shell"]
InputFormat = Literal["dotenv", "json", "yaml"]
FORMATS: tuple[str, ...] = get_args(Format)
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)


def guess_format(filename: str) -> InputFormat:
    """Return the format a file name suggests: .json, .yaml/.yml, else dotenv."""
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return "dotenv"


# Output file names and the format each picks (`.env.local` and the like are dotenv too).
OUTPUT_EXTENSIONS: dict[str, Format] = {
    ".env": "dotenv",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".sh": "shell",
}


def output_format(filename: str) -> Format | None:
    """Return the format an output file's name asks for, or None when it names none."""
    name = PurePath(filename).name.lower()
    found = OUTPUT_EXTENSIONS.get(PurePath(name).suffix)
    if found is None and (name == ".env" or name.startswith(".env.")):
        return "dotenv"
    return found


def carriers(secrets: Mapping[str, str], candidates: tuple[str, ...]) -> list[str]:
    """Return the candidate formats that can write every one of `secrets`, in order."""
    found = []
    for fmt in candidates:
        try:
            render(secrets, fmt)
        except FormatError:
            continue
        found.append(fmt)
    return found


def parse(text: str, fmt: str) -> dict[str, str]:
    """Return the secrets in `text`, written in format `fmt` (dotenv, json or yaml)."""
    if fmt == "dotenv":
        from kavach.formats.dotenv import parse_dotenv

        return parse_dotenv(text)
    if fmt == "json":
        from kavach.formats.json_format import parse_json

        return parse_json(text)
    if fmt == "yaml":
        from kavach.formats.yaml_format import parse_yaml

        return parse_yaml(text)
    raise FormatError(f"cannot read format {fmt!r}: use one of {', '.join(INPUT_FORMATS)}")


def render(secrets: Mapping[str, str], fmt: str) -> str:
    """Return `secrets` written in format `fmt` (dotenv, json, yaml or shell)."""
    if fmt == "dotenv":
        from kavach.formats.dotenv import render_dotenv

        return render_dotenv(secrets)
    if fmt == "json":
        from kavach.formats.json_format import render_json

        return render_json(secrets)
    if fmt == "yaml":
        from kavach.formats.yaml_format import render_yaml

        return render_yaml(secrets)
    if fmt == "shell":
        from kavach.formats.shell import render_shell

        return render_shell(secrets)
    raise FormatError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
