"""Calls to an environment's provider API, and how a provider configuration is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kavach.cli import render
from kavach.cli.errors import ApiError
from kavach.cli.resources import Object, segment

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.target import Target

PROVIDERS = ("github", "gcp", "azure")
NAMES = {"github": "GitHub Actions", "gcp": "GCP Secret Manager", "azure": "Azure Key Vault"}


def collection(target: Target) -> str:
    """Return the API path of the environment's providers (a trailing slash, as documented)."""
    return f"/environments/{segment(target.id)}/providers/"


def path(target: Target, provider: str) -> str:
    """Return the API path of one provider of the environment."""
    return f"/environments/{segment(target.id)}/providers/{segment(provider)}"


def not_configured_hint(exc: ApiError, provider: str) -> ApiError:
    """Return `exc`, with the command that configures `provider` when the server says 404."""
    if exc.status != 404 or provider not in PROVIDERS:
        return exc
    hint = f"{exc.message}; configure it with `kavach provider configure {provider}`"
    return ApiError(exc.status, exc.error_code, hint, exc.data)


def config_of(data: Object) -> Object:
    """Return a configuration's settings ({} if the server sent none)."""
    config = data.get("config")
    return config if isinstance(config, dict) else {}


def destination(data: Object) -> str:
    """Return where a configuration syncs to, in a few words (e.g. `octo/app, env prod`)."""
    provider = data.get("provider")
    config = config_of(data)
    parts: list[str] = []
    if provider == "github":
        parts.append(f"{config.get('owner')}/{config.get('repository')}")
        if config.get("environment"):
            parts.append(f"environment {config['environment']}")
        if config.get("api_url"):
            parts.append(str(config["api_url"]))
    elif provider == "gcp":
        parts.append(f"project {config.get('project_id')}")
        if config.get("location"):
            parts.append(f"location {config['location']}")
    elif provider == "azure":
        parts.append(str(config.get("vault_url")))
    else:
        parts.extend(f"{key}={value}" for key, value in sorted(config.items()))
    if config.get("prefix"):
        parts.append(f"prefix {config['prefix']}")
    return ", ".join(parts)


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or render.EMPTY_CELL
    return value


def show(cli: App, data: Object, *, title: str) -> None:
    """Print one configuration: its settings, which credentials are stored, and when."""
    config = config_of(data)
    stored = data.get("credential_fields") or []
    pairs: list[tuple[str, Any]] = [("Provider", data.get("provider"))]
    pairs += [(key, _value(value)) for key, value in config.items()]
    pairs += [
        ("Credentials", f"stored, never shown ({render.cell(stored)})"),
        ("Created", render.when(data.get("created_at"))),
        ("Updated", render.when(data.get("updated_at"))),
    ]
    render.fields(cli, pairs, title=title)
