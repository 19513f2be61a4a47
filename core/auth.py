"""Bearer-token verification: the only way a request learns who it is and which tenant it is in.

The organization comes from verified claims only — never from a header, a body field or a
query argument — so a caller cannot name another tenant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from bson import ObjectId
from bson.errors import InvalidId

from core.config import Settings
from core.errors import AuthenticationError

ORG_CLAIM = "org_id"
NAME_CLAIM = "name"
ROLES_CLAIM = "roles"
NUMERIC_DATES = ("exp", "nbf", "iat")
"""Claims that RFC 7519 defines as NumericDate: a JSON number, never a numeric string."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: a user acting inside exactly one organization."""

    user_id: ObjectId
    organization_id: ObjectId
    full_name: str
    roles: tuple[str, ...] = field(default_factory=tuple)


def _object_id(claims: dict[str, Any], name: str) -> ObjectId:
    try:
        return ObjectId(str(claims[name]))
    except (InvalidId, TypeError) as exc:
        raise AuthenticationError(f"Token claim '{name}' is not a valid id") from exc


def parse_authorization_header(header: str | None) -> str:
    """Returns the token from `Authorization: Bearer <token>`, refusing any other shape."""
    if not header:
        raise AuthenticationError("Authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return token.strip()


def verify_token(token: str, settings: Settings) -> Principal:
    """Verifies signature, algorithm, expiry, audience and issuer, then builds the principal."""
    return _verified(token, settings)[0]


def _verified(token: str, settings: Settings) -> tuple[Principal, float]:
    """The token's principal and its `exp`."""
    try:
        claims = jwt.decode(
            token,
            key=settings.verification_key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "sub", ORG_CLAIM]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("Token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthenticationError("Token audience is not accepted") from exc
    except jwt.InvalidIssuerError as exc:
        raise AuthenticationError("Token issuer is not accepted") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthenticationError(f"Token is missing the '{exc.claim}' claim") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise AuthenticationError("Token algorithm is not accepted") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthenticationError("Token signature is invalid") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError("Token is malformed or invalid") from exc

    for name in NUMERIC_DATES:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            # PyJWT casts "1767225600" with int(); RFC 7519 says a NumericDate is a JSON number.
            raise AuthenticationError(f"Token claim '{name}' must be a number (seconds since 1970)")
    roles = claims.get(ROLES_CLAIM) or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthenticationError(f"Token claim '{ROLES_CLAIM}' must be a list of strings")
    name = claims.get(NAME_CLAIM) or ""
    if not isinstance(name, str):
        raise AuthenticationError(f"Token claim '{NAME_CLAIM}' must be a string")
    principal = Principal(
        user_id=_object_id(claims, "sub"),
        organization_id=_object_id(claims, ORG_CLAIM),
        full_name=name,
        roles=tuple(roles),
    )
    return principal, float(claims["exp"])


def authenticate(header: str | None, settings: Settings) -> Principal:
    """Returns the principal of an `Authorization` header; the one auth rule of both APIs."""
    return verify_token(parse_authorization_header(header), settings)


class VerifiedTokens:
    """The principals of tokens this process already verified, kept until they expire.

    A token's verdict depends only on its bytes, the settings and the time, and verifying it
    (decoding, preparing the key, checking the signature) costs tens of microseconds that a busy
    client, or a flooding one, would pay again on every request. A header seen before is
    answered from here while its `exp` (plus the leeway) has not passed; refused tokens are not
    kept, and at most `size` headers are (the oldest goes first).
    """

    def __init__(
        self, settings: Settings, size: int = 4096, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.size = size
        self.clock = clock
        self._known: dict[str, tuple[Principal, float]] = {}

    def authenticate(self, header: str) -> Principal:
        """As `authenticate`, remembering the answer."""
        known = self._known.get(header)
        if known is not None and self.clock() < known[1]:
            return known[0]
        principal, expires = _verified(parse_authorization_header(header), self.settings)
        if known is None and len(self._known) >= self.size:
            del self._known[next(iter(self._known))]
        self._known[header] = (principal, expires + self.settings.jwt_leeway_seconds)
        return principal


DEV_ORGANIZATION_ID = "64ee9a8b1e7f2a0011223344"
DEV_USER_ID = "64ee9a8b1e7f2a0011223399"
"""The development identity: fixed, so every development token of a machine sees the same data."""


def mint_dev_token(settings: Settings) -> str:
    """A token for the development identity (`make token`, and the IDE opened from loopback in
    development); callers check the environment first."""
    return mint_token(
        settings,
        user_id=DEV_USER_ID,
        organization_id=DEV_ORGANIZATION_ID,
        full_name="Alex Rep",
        roles=["rep", "admin"],
    )


def mint_token(
    settings: Settings,
    *,
    user_id: ObjectId | str,
    organization_id: ObjectId | str,
    full_name: str,
    roles: list[str] | None = None,
    ttl_seconds: int | None = None,
) -> str:
    """Signs a development token with the configured secret.

    On a request path only for the development IDE (`resolvers.dev_tokens.dev_token_for`)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        ORG_CLAIM: str(organization_id),
        NAME_CLAIM: full_name,
        ROLES_CLAIM: roles or ["rep"],
        "iat": now,
        "exp": now + (ttl_seconds or settings.dev_token_ttl_seconds),
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    algorithm = settings.jwt_algorithms[0]
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
