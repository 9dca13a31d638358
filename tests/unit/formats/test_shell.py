"""Shell output: `eval` and `.` in bash and sh set exactly the values, and run nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavach.formats.common import FormatError
from kavach.formats.shell import render_shell, shell_quote

from .conftest import TRICKY, random_values, shell_environment

EVERYTHING = {
    **TRICKY,
    "CR": "a\rb\r\n",
    "QUOTE_DOLLAR": "it's $5 `x` $(y) ${z}",
    "ONLY_QUOTES": "'''",
    **{f"R{i}": value for i, value in enumerate(random_values(3, 300))},
}


@pytest.mark.parametrize("shell", ["bash", "sh"])
@pytest.mark.parametrize("how", ['eval "$(cat "$FILE")"', '. "$FILE"'])
def test_shells_read_back_every_value(tmp_path: Path, shell: str, how: str) -> None:
    path = tmp_path / "secrets.sh"
    path.write_bytes(render_shell(EVERYTHING).encode("utf-8"))
    marker = tmp_path / "pwned"

    environment = shell_environment(shell, how, path)

    assert {name: environment.get(name) for name in EVERYTHING} == EVERYTHING
    assert not marker.exists()


def test_lines_are_exports_of_single_quoted_words() -> None:
    assert render_shell({"A": "it's", "B": ""}) == "export A='it'\\''s'\nexport B=''\n"
    assert shell_quote("$(touch pwned)") == "'$(touch pwned)'"


def test_refuses_names_a_shell_cannot_hold_and_nul() -> None:
    with pytest.raises(FormatError) as caught:
        render_shell({"a.b": "1", "OK": "2", "N": "x\0hunter2"})

    message = str(caught.value)
    assert "a.b (not a shell variable name)" in message
    assert "N (a NUL character)" in message
    assert "OK" not in message
    assert "hunter2" not in message
