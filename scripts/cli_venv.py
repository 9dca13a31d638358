"""A virtual environment holding the command line alone, as `pip install kavach` makes it.

The lock's wheels for the command line (requirements/cli.txt) are downloaded once, with
their hashes checked, into a wheelhouse beside this interpreter; Kavach's own wheel is
built from the source tree; then pip installs `kavach` into a new environment from those
files only (`--no-index`), resolving its dependencies from the wheel's metadata like any
`pip install`. Nothing of the server's can be installed: its wheels are not there.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_LOCK = ROOT / "requirements" / "cli.txt"
WHEELHOUSE = Path(sys.prefix) / "cli-wheelhouse"
_PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]


def _run(command: list[str]) -> None:
    """Run `command`; on failure raise with its output, which says what pip refused."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our argv, no shell
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def wheelhouse(directory: Path = WHEELHOUSE) -> Path:
    """Return a directory holding the wheels the CLI lock pins (downloaded when it changed)."""
    stamp = directory / ".lock-sha256"
    digest = hashlib.sha256(CLI_LOCK.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.whl"):
            stale.unlink()
        _run(
            [
                *_PIP,
                "download",
                "--require-hashes",
                "--no-deps",
                "-r",
                str(CLI_LOCK),
                "-d",
                str(directory),
            ]
        )
        stamp.write_text(digest)
    return directory


def build(destination: Path, *, wheels: Path | None = None, bytecode: bool = True) -> Path:
    """Create a CLI-only environment at `destination`; return its `kavach` executable.

    `bytecode=False` leaves the modules uncompiled (faster to make, slower to start first).
    """
    found = wheels or wheelhouse()
    with tempfile.TemporaryDirectory() as built:
        # This interpreter's hatchling (the lock's) builds the wheel: nothing is fetched.
        _run([*_PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", built, str(ROOT)])
        (wheel,) = Path(built).glob("kavach-*.whl")
        _run([sys.executable, "-m", "venv", "--without-pip", str(destination)])
        target = destination / "bin" / "python"
        compiled = [] if bytecode else ["--no-compile"]
        _run(
            [
                *_PIP,
                "--python",
                str(target),
                "install",
                *compiled,
                "--no-index",
                "--find-links",
                str(found),
                str(wheel),
            ]
        )
    return destination / "bin" / "kavach"


def installed(destination: Path) -> dict[str, str]:
    """Return the distributions installed in the environment at `destination`, by name."""
    probe = (
        "import json; from importlib import metadata;"
        "print(json.dumps({d.metadata['Name']: d.version for d in metadata.distributions()}))"
    )
    done = subprocess.run(  # noqa: S603 - our argv, no shell
        [str(destination / "bin" / "python"), "-I", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    names: dict[str, str] = json.loads(done.stdout)
    return names
