"""The environment `kavach run` gives its command: the caller's plus the secrets.

Secrets never set a reserved variable unless --override-reserved: the ones that say where
programs and libraries are found and how shells and interpreters start (a secret could
otherwise run code: LD_PRELOAD, PYTHONSTARTUP, BASH_ENV, NODE_OPTIONS…), who and where the
user is, and the terminal and locale. RESERVED_NAMES and RESERVED_PREFIXES are the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kavach.cli.errors import CliError
from kavach.formats.common import names_list

RESERVED_NAMES = frozenset(
    {
        # who, where, which shell
        "PATH",
        "HOME",
        "SHELL",
        "USER",
        "LOGNAME",
        "PWD",
        "OLDPWD",
        "TMPDIR",
        # terminal, language, time zone
        "TERM",
        "LANG",
        "LANGUAGE",
        "TZ",
        # shell start-up and parsing
        "IFS",
        "SHLVL",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "CDPATH",
        "GLOBIGNORE",
        # interpreters that load code named in the environment
        "NODE_OPTIONS",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "RUBYLIB",
        "JAVA_TOOL_OPTIONS",
    }
)
RESERVED_PREFIXES = ("LD_", "DYLD_", "LC_", "PYTHON", "KAVACH_", "BASH_FUNC_")


def is_reserved(name: str) -> bool:
    """Tell whether secrets leave `name` alone unless --override-reserved."""
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


@dataclass
class ChildEnv:
    """The environment for the command, and which secrets were left out and why."""

    env: dict[str, str]
    skipped_reserved: list[str] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)


def build_env(
    base: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    override_reserved: bool = False,
    preserve_env: bool = False,
) -> ChildEnv:
    """Return `base` with `secrets` added: reserved names skipped, existing ones kept if asked."""
    with_nul = [name for name, value in secrets.items() if "\0" in value]
    if with_nul:
        raise CliError(
            f"{names_list(with_nul)}: a value holds a NUL character, which no environment "
            "variable can carry"
        )
    built = ChildEnv(dict(base))
    for name, value in secrets.items():
        if is_reserved(name) and not override_reserved:
            built.skipped_reserved.append(name)
        elif preserve_env and name in base:
            built.kept_existing.append(name)
        else:
            built.env[name] = value
    built.skipped_reserved.sort()
    built.kept_existing.sort()
    return built
