"""Domain errors and the one table that maps them to HTTP.

KavachError
├── ConfigurationError          (start-up only; never reaches HTTP)
├── ValidationFailed            422 validation_failed
│   ├── NoChanges               422 no_changes
│   ├── TooManySecrets          422 too_many_secrets
│   └── CredentialsRequired     422 credentials_required
├── NotAuthenticated            401 not_authenticated
│   ├── InvalidToken            401 invalid_token
│   ├── TokenExpired            401 token_expired
│   ├── InvalidRefreshToken     401 invalid_refresh_token
│   └── RefreshTokenReused      401 refresh_token_reused
├── Forbidden                   403 forbidden
│   └── CsrfFailed              403 csrf_failed
├── NotFound                    404 not_found
├── Conflict                    409 conflict
│   ├── AlreadyExists           409 already_exists
│   ├── HasChildren             409 has_children
│   ├── LastOwner               409 last_owner
│   └── VersionConflict         409 version_conflict
├── PayloadTooLarge             413 payload_too_large
│   └── ValueTooLarge           413 value_too_large
├── RateLimited                 429 rate_limited
├── DeviceFlowError             400 (code chosen per instance: authorization_pending, …)
├── StateRefused                400 invalid_state
├── IdentityProviderError       502 identity_provider_error
├── ProviderError               502 provider_error (a sync target failed)
│   └── TargetNotAllowed        422 target_not_allowed
└── ServiceUnavailable          503 service_unavailable
    ├── CannotDecrypt           503 decryption_failed
    └── CredentialsUnreadable   503 credentials_unreadable
"""

from __future__ import annotations

from typing import Any


class KavachError(Exception):
    """Base of every error the domain raises on purpose."""

    error_code = "error"
    # True when the work done before raising must still be committed (e.g. a revoked session).
    persist_changes = False

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ConfigurationError(KavachError):
    """The server's configuration is unusable."""

    error_code = "configuration_error"


class ValidationFailed(KavachError):
    """Input is well-formed but not acceptable."""

    error_code = "validation_failed"


class NoChanges(ValidationFailed):
    """A commit that would not change anything."""

    error_code = "no_changes"


class TooManySecrets(ValidationFailed):
    """A version would hold more secrets than allowed."""

    error_code = "too_many_secrets"


class CredentialsRequired(ValidationFailed):
    """An update needs the complete credential set; `data["missing"]` names the absent fields."""

    error_code = "credentials_required"


class NotAuthenticated(KavachError):
    """No valid credentials came with the request."""

    error_code = "not_authenticated"


class InvalidToken(NotAuthenticated):
    """The bearer token is malformed, forged, revoked or of the wrong type."""

    error_code = "invalid_token"


class TokenExpired(NotAuthenticated):
    """The access token has expired; refresh it."""

    error_code = "token_expired"


class InvalidRefreshToken(NotAuthenticated):
    """The refresh token is unknown, expired or its session was revoked."""

    error_code = "invalid_refresh_token"
    persist_changes = True  # keep the audit event of the failed attempt


class RefreshTokenReused(NotAuthenticated):
    """An already-used refresh token came back: the whole session is revoked."""

    error_code = "refresh_token_reused"
    persist_changes = True


class TokenRefused(NotAuthenticated):
    """A token another issuer signed (an ID token, a platform's token) does not hold.

    `reason` names the check that failed (signature, issuer, audience, expired, …); the
    message says it in words and never carries the token.
    """

    def __init__(self, message: str, *, reason: str, code: str = "oidc_token_refused") -> None:
        super().__init__(message, data={"reason": reason})
        self.reason = reason
        self.error_code = code


class Forbidden(KavachError):
    """The caller is known but may not do this."""

    error_code = "forbidden"


class CsrfFailed(Forbidden):
    """A change authenticated by a browser's cookie lacks its session's CSRF token."""

    error_code = "csrf_failed"


class NotFound(KavachError):
    """The resource does not exist or is not visible to the caller."""

    error_code = "not_found"


class Conflict(KavachError):
    """The request conflicts with the current state."""

    error_code = "conflict"


class AlreadyExists(Conflict):
    """A resource with that name already exists where it would go."""

    error_code = "already_exists"


class HasChildren(Conflict):
    """The resource still has children; delete them first or cascade."""

    error_code = "has_children"


class LastOwner(Conflict):
    """The change would leave an organization without an owner."""

    error_code = "last_owner"


class VersionConflict(Conflict):
    """The environment moved on since the version the caller based its change on."""

    error_code = "version_conflict"


class PayloadTooLarge(KavachError):
    """The request body is over the limit."""

    error_code = "payload_too_large"


class ValueTooLarge(PayloadTooLarge):
    """A secret value is over the configured size limit."""

    error_code = "value_too_large"


class RateLimited(KavachError):
    """Too many requests; retry after the given number of seconds."""

    error_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, data={"retry_after": retry_after})
        self.retry_after = retry_after


class DeviceFlowError(KavachError):
    """An RFC 8628 token-endpoint answer other than success; poll bookkeeping is kept."""

    persist_changes = True

    def __init__(self, code: str, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message, data=data)
        self.error_code = code


class StateRefused(KavachError):
    """An OpenID sign-in's way back names no trip in progress: unknown, used, or foreign."""

    error_code = "invalid_state"


class IdentityProviderError(KavachError):
    """The external identity provider failed or answered unexpectedly."""

    error_code = "identity_provider_error"


class ProviderError(KavachError):
    """A sync target (GitHub, GCP, Azure) refused or failed; says whether retrying may help."""

    error_code = "provider_error"
    persist_changes = True  # keep the audit event and run record of the failure

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class TargetNotAllowed(ProviderError):
    """A sync target resolves to an address this server may not call (loopback, private, …)."""

    error_code = "target_not_allowed"


DATABASE_UNAVAILABLE = "the database is unavailable; retry later"


class ServiceUnavailable(KavachError):
    """A dependency (usually the database) is unreachable."""

    error_code = "service_unavailable"


class CannotDecrypt(ServiceUnavailable):
    """Stored secrets (or their data key) do not decrypt with this server's keys."""

    error_code = "decryption_failed"

    def __init__(self, message: str, *, version_id: str | None = None) -> None:
        super().__init__(message)
        self.version_id = version_id  # the version being read, when known


class CredentialsUnreadable(ServiceUnavailable):
    """Stored provider credentials no longer decrypt (the provider-credential key changed)."""

    error_code = "credentials_unreadable"


HTTP_STATUS: dict[type[KavachError], int] = {
    TargetNotAllowed: 422,
    ValidationFailed: 422,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    RateLimited: 429,
    DeviceFlowError: 400,
    StateRefused: 400,
    IdentityProviderError: 502,
    ProviderError: 502,
    ServiceUnavailable: 503,
}


def http_status_for(error: KavachError) -> int:
    """Return the HTTP status for a domain error, walking up its class tree."""
    for cls in type(error).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500
