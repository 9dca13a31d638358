"""YAML secrets files: one flat mapping of names to scalars, each read as the text written.

Values are read without YAML's type guessing (PyYAML's BaseLoader), so `PORT: 8080` is
"8080", `DEBUG: yes` is "yes" (not True), `ZIP: 01234` is "01234" (not 668) and
`VERSION: 1.10` is "1.10" (not 1.1). Lists and nested mappings are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kavach.formats.common import FormatError, check_names


def _loader_class() -> type[Any]:
    # Imported here: yaml is slow to import and the CLI must start fast.
    import yaml

    class StrictLoader(yaml.BaseLoader):
        """BaseLoader that refuses a key given twice in one mapping."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[str] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise FormatError(
                        f"YAML: {key!r} appears twice in one mapping "
                        f"(line {key_node.start_mark.line + 1})"
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _where(exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def parse_yaml(text: str) -> dict[str, str]:
    """Return the secrets in a YAML mapping; every scalar value is taken as written."""
    import yaml

    try:
        data = yaml.load(text, Loader=_loader_class())  # noqa: S506 - BaseLoader builds no objects
    except yaml.YAMLError as exc:
        # The problem and its position only: PyYAML's message quotes the offending line.
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise FormatError(f"YAML: {problem}{_where(exc)}") from None
    if data is None or data == "":
        return {}
    if not isinstance(data, dict):
        raise FormatError("YAML: expected one mapping of NAME: value pairs")
    check_names(data, where="YAML")
    nested = sorted(name for name, value in data.items() if not isinstance(value, str))
    if nested:
        raise FormatError(
            f"YAML: values must be scalars, not lists or mappings: {', '.join(nested)}"
        )
    return dict(data)


def render_yaml(secrets: Mapping[str, str]) -> str:
    """Return `secrets` as a YAML mapping that parse_yaml (and YAML's safe loaders) read back."""
    import yaml

    wanted = dict(secrets)
    # Readable UTF-8 first; PyYAML writes some line-break characters (NEL, U+2028) raw,
    # which read back as line breaks, so fall back to escaping everything non-ASCII.
    for allow_unicode in (True, False):
        text: str = yaml.safe_dump(
            wanted, default_flow_style=False, allow_unicode=allow_unicode, sort_keys=False
        )
        if parse_yaml(text) == wanted:
            return text
    raise FormatError("these secrets cannot be written as YAML; use --format json")
