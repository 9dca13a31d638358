"""The environment `kavach run` gives its command: the caller's plus the secrets.

Anyone who may change an environment's secrets (an editor, or a leaked editor token)
chooses variable names as well as values, so a secret must not be able to make the
command, or a program it starts, run code or send traffic elsewhere: `GIT_SSH_COMMAND`
runs a command on `git fetch`, `GIT_CONFIG_COUNT` with `GIT_CONFIG_KEY_0=core.pager`
on `git log`, `BASH_ENV='$(…)'` on any bash script, `LD_PRELOAD` in every program. The
families below (shell-style patterns, case-sensitive) are never set from a secret unless
the caller opts in: `--allow-env NAME` for one name, `--override-reserved` for all. The
README's table of families is this table; keep the two the same.

The caller's own Kavach credentials (`CREDENTIALS`: the CLI's token, a server's keys) are
taken out of the environment the command inherits unless the caller passes them on: the
command needs the secrets, not the power to read or change every other one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import translate

from kavach.cli.errors import CliError
from kavach.formats.common import names_list


@dataclass(frozen=True)
class Family:
    """Reserved variables that belong together, and why a secret may not set them."""

    name: str
    patterns: tuple[str, ...]


FAMILIES = (
    Family(
        "who and where the user is",
        ("PATH", "HOME", "SHELL", "USER", "LOGNAME", "PWD", "OLDPWD", "TMPDIR"),
    ),
    Family(
        "terminal, language and time zone",
        ("TERM", "TERMINFO", "TERMINFO_DIRS", "LANG", "LANGUAGE", "LC_*", "TZ", "NLSPATH"),
    ),
    Family(
        "shell start-up, prompts and history",
        (
            *("ENV", "BASH_ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "IFS", "SHLVL"),
            *("PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE"),
            *("ZDOTDIR", "FPATH", "INPUTRC", "HISTFILE"),
        ),
    ),
    Family(
        "the dynamic loader and C library",
        ("LD_*", "DYLD_*", "GCONV_PATH", "GLIBC_TUNABLES", "OPENSSL_CONF", "OPENSSL_*MODULES"),
    ),
    Family("git", ("GIT_*",)),
    Family(
        "programs that other programs start",
        (
            *("PAGER", "*_PAGER", "MANPAGER", "EDITOR", "*_EDITOR", "VISUAL", "BROWSER"),
            *("*_ASKPASS", "SSH_ASKPASS_REQUIRE", "LESS", "LESSOPEN", "LESSCLOSE", "LESSEDIT"),
            *("LESSKEY*", "HGRCPATH", "HGEDITOR"),
            *("CC", "CXX", "CPP", "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS"),
        ),
    ),
    Family(
        "interpreters and build tools",
        (
            *("PYTHON*", "PERL5*", "PERLLIB", "PERL_*", "RUBY*", "GEM_HOME", "GEM_PATH"),
            *("BUNDLE_GEMFILE", "NODE_OPTIONS", "NODE_PATH", "NODE_REPL_EXTERNAL_MODULE"),
            *("npm_config_*", "NPM_CONFIG_*", "YARN_*", "*JAVA_OPTIONS", "CLASSPATH"),
            *("LUA_INIT*", "LUA_PATH*", "LUA_CPATH*", "PHPRC", "PHP_INI_SCAN_DIR"),
            *("TCLLIBPATH", "R_PROFILE*", "R_ENVIRON*", "DOTNET_STARTUP_HOOKS", "CORECLR_*"),
            *("COR_*", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_FLAGS", "ERL_LIBS"),
            *("ELIXIR_ERL_OPTIONS", "GOFLAGS", "RUSTC", "RUSTC_WRAPPER", "CARGO_BUILD_*"),
            *("CARGO_TARGET_*",),
        ),
    ),
    Family(
        "compiler and launcher options, package and toolchain sources",
        (
            *("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "OBJCFLAGS", "FFLAGS"),
            *("RUSTFLAGS", "RUSTDOCFLAGS", "CARGO_ENCODED_RUSTFLAGS", "JAVA_OPTS"),
            *("JAVA_TOOL_OPTIONS", "MAVEN_OPTS", "GRADLE_OPTS", "SBT_OPTS", "ANT_OPTS"),
            *("CATALINA_OPTS", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GONOSUMCHECK"),
            *("GONOPROXY", "GOPRIVATE", "GOINSECURE", "GOTOOLCHAIN", "GOENV", "PIP_*"),
            *("UV_*", "POETRY_*", "*_RSH", "RSYNC_CONNECT_PROG", "SVN_SSH", "MANOPT"),
            *("DOCKER_HOST",),
        ),
    ),
    Family(
        "proxies, trusted certificates and TLS key logs",
        (
            *("*_PROXY", "*_proxy", "SSL_CERT_*", "*_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"),
            *("NODE_TLS_REJECT_UNAUTHORIZED", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"),
            *("SSLKEYLOGFILE",),
        ),
    ),
    Family("Kavach's own settings", ("KAVACH_*",)),
)

# Variables of the caller's environment that hold Kavach credentials: the CLI's tokens, and
# what a server reads its keys and connection secrets from (URLs may hold passwords).
CREDENTIALS = (
    "KAVACH_TOKEN",
    "KAVACH_OIDC_TOKEN",
    "KAVACH_JWT_SIGNING_KEY",
    "KAVACH_SECRET_ENCRYPTION_KEY",
    "KAVACH_SECRET_ENCRYPTION_OLD_KEYS",
    "KAVACH_PROVIDER_CREDENTIAL_KEY",
    "KAVACH_GITHUB_CLIENT_SECRET",
    "KAVACH_DATABASE_URL",
    "KAVACH_REDIS_URL",
)

_PATTERNS = [
    (family, re.compile("|".join(translate(pattern) for pattern in family.patterns)))
    for family in FAMILIES
]
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def reserved_family(name: str) -> Family | None:
    """Return the family that reserves `name`, or None when secrets may set it."""
    for family, pattern in _PATTERNS:
        if pattern.match(name):
            return family
    return None


def is_reserved(name: str) -> bool:
    """Tell whether secrets leave `name` alone unless the caller opts in."""
    return reserved_family(name) is not None


def allowed_names(names: Iterable[str]) -> frozenset[str]:
    """Return the --allow-env names, refusing patterns and anything not a variable name."""
    allowed = frozenset(names)
    bad = sorted(name for name in allowed if not NAME.fullmatch(name))
    if bad:
        raise CliError(
            f"--allow-env takes variable names, one per option, not patterns: {', '.join(bad)}"
        )
    return allowed


@dataclass
class ChildEnv:
    """The environment for the command, and which secrets were treated specially and why."""

    env: dict[str, str]
    skipped_reserved: list[str] = field(default_factory=list)
    set_reserved: list[str] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)  # the caller's credentials, not passed on


def build_env(
    base: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    allow: frozenset[str] = frozenset(),
    override_reserved: bool = False,
    preserve_env: bool = False,
    pass_credentials: bool = False,
) -> ChildEnv:
    """Return `base` without the caller's credentials, with `secrets` added.

    Reserved names are set only if allowed, existing variables kept only if asked, and the
    credentials left in only with `pass_credentials`.
    """
    with_nul = [name for name, value in secrets.items() if "\0" in value]
    if with_nul:
        raise CliError(
            f"{names_list(with_nul)}: a value holds a NUL character, which no environment "
            "variable can carry"
        )
    withheld = [] if pass_credentials else sorted(name for name in CREDENTIALS if name in base)
    base = {name: value for name, value in base.items() if name not in withheld}
    built = ChildEnv(dict(base), withheld=withheld)
    for name, value in secrets.items():
        reserved = is_reserved(name)
        if reserved and not (override_reserved or name in allow):
            built.skipped_reserved.append(name)
        elif preserve_env and name in base:
            built.kept_existing.append(name)
        else:
            built.env[name] = value
            if reserved:
                built.set_reserved.append(name)
    for names in (built.skipped_reserved, built.set_reserved, built.kept_existing):
        names.sort()
    return built
