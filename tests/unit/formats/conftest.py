"""Values that are hard to quote, and readers that check our output for real."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Each is read back exactly by python-dotenv and by bash from Kavach's dotenv output.
TRICKY = {
    "NEWLINES": "line one\nline two\n",
    "ONLY_NEWLINE": "\n",
    "DOUBLE_QUOTES": 'say "hi"',
    "SINGLE_QUOTE": "it's",
    "BOTH_QUOTES": 'it\'s "quoted"',
    "DOLLAR": "$HOME and $1 and $$",
    "BRACES": "${HOME} ${} ${X:-default}",
    "SUBSHELL": "$(echo pwned) and `echo pwned`",
    "BACKTICK": "`",
    "EQUALS": "a=b=c",
    "HASH": "#not a comment",
    "HASH_AFTER_SPACE": "value # not a comment either",
    "BACKSLASH": "C:\\Users\\x",
    "DOUBLE_BACKSLASH": "a\\\\b",
    "TRAILING_BACKSLASH": "ends with \\",
    "BACKSLASH_N": "literal \\n, not a newline",
    "BACKSLASH_QUOTE": "\\'",
    "ESCAPED_DQUOTE": '\\"',
    "SPACES": "  padded  ",
    "TAB": "\tx\t",
    "EMPTY": "",
    "UNICODE": "पासवर्ड 🔑 ünïcødé",
    "NBSP": "\u00a0x\u00a0",
    "SEMICOLON": "a; rm -rf /; b",
    "PIPE_AMP": "a | b && c || d &",
    "GLOB": "* ? [a-z]",
    "TILDE": "~/x",
    "BANG": "!! !$ !x",
    "CONTROL": "\x1b[31mred\x1b[0m \x07 \x0b \x0c",
    "EXPORT_WORD": "export X=1",
    "MULTILINE_QUOTES": "'\n\"\n",
    "PERCENT": "%s %d 100%",
}
# The alphabet of random values: every character that means something to a shell or a
# dotenv parser, plus a few that mean nothing.
ALPHABET = [*" ab$'\"`\\{}()=#\n\t!;|&*?~%:-[]<>", "é", "日", "\u00a0", "\x1b"]


def random_values(seed: int, count: int, length: int = 12) -> list[str]:
    """Return `count` random strings over ALPHABET (the same ones for the same seed)."""
    rng = random.Random(seed)
    return [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, length))) for _ in range(count)
    ]


DUMP_ENVIRONMENT = "import json, os, sys; json.dump(dict(os.environ), sys.stdout)"


def shell_environment(shell: str, script: str, path: Path) -> dict[str, str]:
    """Return the environment a `shell` ends with after running `script` (FILE is `path`)."""
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"{shell} is not installed")
    command = f'{script}\n"$KAVACH_TEST_PYTHON" -c "$KAVACH_TEST_DUMP"'
    result = subprocess.run(
        [program, "-c", command],
        cwd=path.parent,
        env={
            "PATH": os.environ.get("PATH", os.defpath),
            "KAVACH_TEST_PYTHON": sys.executable,
            "KAVACH_TEST_DUMP": DUMP_ENVIRONMENT,
            "FILE": str(path),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    environment: dict[str, str] = json.loads(result.stdout)
    return environment
