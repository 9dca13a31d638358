"""Access-token signing and verification."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from kavach.server.auth.tokens import AccessTokens, new_refresh_token, token_hash
from kavach.server.auth.usercodes import format_user_code, new_user_code, normalize_user_code
from kavach.server.errors import InvalidToken, TokenExpired

KEY = secrets.token_bytes(32)


def _tokens(**overrides: object) -> AccessTokens:
    options: dict[str, object] = {
        "key": KEY,
        "issuer": "kavach",
        "audience": "kavach-api",
        "ttl_seconds": 60,
    }
    options.update(overrides)
    return AccessTokens(**options)  # type: ignore[arg-type]


def test_round_trip() -> None:
    user, sid = uuid.uuid4(), uuid.uuid4()
    issued = _tokens().issue(user_id=user, session_id=sid, now=datetime.now(UTC))
    claims = _tokens().verify(issued.token)
    assert (claims.user_id, claims.session_id) == (user, sid)
    assert issued.expires_in == 60


def test_expired() -> None:
    issued = _tokens().issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=datetime.now(UTC) - timedelta(minutes=5)
    )
    with pytest.raises(TokenExpired):
        _tokens().verify(issued.token)


@pytest.mark.parametrize(
    "other", [{"key": secrets.token_bytes(32)}, {"issuer": "evil"}, {"audience": "other"}]
)
def test_wrong_key_issuer_or_audience(other: dict[str, object]) -> None:
    issued = _tokens(**other).issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=datetime.now(UTC)
    )
    with pytest.raises(InvalidToken):
        _tokens().verify(issued.token)


def test_wrong_type_and_missing_claims_are_refused() -> None:
    now = int(datetime.now(UTC).timestamp())
    base = {
        "iss": "kavach",
        "aud": "kavach-api",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    refresh_typed = jwt.encode({**base, "typ": "refresh"}, KEY, algorithm="HS256")
    untyped = jwt.encode(base, KEY, algorithm="HS256")
    none_alg = jwt.encode({**base, "typ": "access"}, "", algorithm="none")
    for token in (refresh_typed, untyped, none_alg):
        with pytest.raises(InvalidToken):
            _tokens().verify(token)


def test_refresh_tokens_are_random_and_hashed() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and first.startswith("kvr_")
    assert token_hash(first) != first and len(token_hash(first)) == 64


def test_user_codes() -> None:
    code = new_user_code()
    shown = format_user_code(code)
    assert len(code) == 8 and shown[4] == "-"
    assert normalize_user_code(shown.lower()) == code
    assert normalize_user_code(f" {code[:4]} {code[4:]} ") == code
    assert normalize_user_code("AAAA-AAAA") is None
    assert normalize_user_code("BCDF") is None
