"""Bearer-token verification on both surfaces: every bad token is refused the same way."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric import rsa

from core.auth import VerifiedTokens, mint_token, verify_token
from core.config import DEV_JWT_SECRET, Settings
from core.errors import AuthenticationError
from tests.support import TEST_JWT_SECRET, auth, claims, gql, token

ME = "query { me { userId organizationId fullName roles } }"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none_token() -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."


def _rs256_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(), key, algorithm="RS256")


BAD_TOKENS = {
    "malformed": "not-a-jwt",
    "expired": token(exp=int(time.time()) - 3600),
    "wrong-signature": token(secret="another-secret-0123456789-0123456789"),
    "alg-none": _alg_none_token(),
    "alg-not-allowed": _rs256_token(),
    "no-exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, TEST_JWT_SECRET),
    "no-org": jwt.encode({k: v for k, v in claims().items() if k != "org_id"}, TEST_JWT_SECRET),
    "org-not-an-id": token(org="acme"),
    "exp-a-string": token(exp=str(int(time.time()) + 3600)),
    "nbf-a-string": token(nbf=str(int(time.time()) - 60)),
    "iat-a-string": token(iat=str(int(time.time()))),
    "exp-a-boolean": token(exp=True),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_rest_refuses_bad_token_with_envelope(client: httpx.AsyncClient, kind: str) -> None:
    response = await client.post("/api/campaigns", json={}, headers=auth(BAD_TOKENS[kind]))
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_graphql_refuses_bad_token_with_code(client: httpx.AsyncClient, kind: str) -> None:
    body = await gql(client, ME, headers=auth(BAD_TOKENS[kind]))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_rest_refuses_missing_header(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/campaigns", json={})
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "message": "Authentication required: send 'Authorization: Bearer <token>'",
    }


async def test_rest_refuses_non_bearer_scheme(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/campaigns", json={}, headers={"Authorization": "Basic x"})
    assert response.status_code == 401
    assert response.json()["message"] == "Authorization header must be 'Bearer <token>'"


async def test_graphql_me_without_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    body = await gql(client, ME)
    assert body["errors"][0]["message"].startswith("Authentication required")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_message_names_expiry(client: httpx.AsyncClient) -> None:
    body = await gql(client, ME, headers=auth(BAD_TOKENS["expired"]))
    assert body["errors"][0]["message"] == "Token has expired"


async def test_me_returns_the_verified_principal(client: httpx.AsyncClient) -> None:
    org, user = ObjectId(), ObjectId()
    body = await gql(client, ME, headers=auth(token(org=org, user=user, roles=["rep", "admin"])))
    assert body.get("errors") is None
    assert body["data"]["me"] == {
        "userId": str(user),
        "organizationId": str(org),
        "fullName": "Alex Rep",
        "roles": ["rep", "admin"],
    }


def test_token_within_leeway_is_accepted(settings: Settings) -> None:
    tok = token(exp=int(time.time()) - 5)
    assert verify_token(tok, settings).full_name == "Alex Rep"


def test_audience_and_issuer_are_checked_when_configured(settings: Settings) -> None:
    strict = settings.model_copy(update={"jwt_audience": "campaigns", "jwt_issuer": "crm"})
    with pytest.raises(AuthenticationError, match="audience"):
        verify_token(token(aud="other", iss="crm"), strict)
    with pytest.raises(AuthenticationError, match="issuer"):
        verify_token(token(aud="campaigns", iss="elsewhere"), strict)
    assert verify_token(token(aud="campaigns", iss="crm"), strict).roles == ("rep",)


def test_minted_dev_token_verifies(settings: Settings) -> None:
    org, user = ObjectId(), ObjectId()
    tok = mint_token(settings, user_id=user, organization_id=org, full_name="Dev User")
    principal = verify_token(tok, settings)
    assert (principal.user_id, principal.organization_id) == (user, org)


def test_production_refuses_default_secret() -> None:
    with pytest.raises(ValueError, match="development default"):
        Settings(environment="production", jwt_secret=DEV_JWT_SECRET)


def test_production_accepts_a_real_secret() -> None:
    assert Settings(environment="production", jwt_secret="x" * 40).environment == "production"


def test_alg_none_cannot_be_allowed() -> None:
    with pytest.raises(ValueError, match="none"):
        Settings(jwt_algorithms=["HS256", "none"])


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_numeric_date_as_a_string_is_refused_by_name(settings: Settings, claim: str) -> None:
    now = int(time.time())
    value = {"exp": now + 600, "nbf": now - 60, "iat": now}[claim]
    bad = jwt.encode(claims(**{claim: str(value)}), TEST_JWT_SECRET)
    with pytest.raises(AuthenticationError, match=f"'{claim}' must be a number"):
        verify_token(bad, settings)


def test_numeric_dates_as_json_numbers_are_accepted(settings: Settings) -> None:
    now = time.time()
    good = jwt.encode(claims(exp=now + 600.5, nbf=now - 60, iat=now), TEST_JWT_SECRET)
    assert verify_token(good, settings).full_name == "Alex Rep"


def test_a_verified_token_is_remembered_until_it_expires(settings: Settings) -> None:
    now = time.time()
    clock = [now]
    tokens = VerifiedTokens(settings, clock=lambda: clock[0])
    header = f"Bearer {token(exp=int(now) + 600)}"
    first = tokens.authenticate(header)
    assert tokens.authenticate(header) is first  # answered from memory, not verified again
    clock[0] = now + 600 + settings.jwt_leeway_seconds + 1
    assert tokens.authenticate(header) is not first  # past its `exp`: verified again
    forged = header[:-4] + ("AAAA" if not header.endswith("AAAA") else "BBBB")
    for _ in range(2):  # a refused token is never remembered
        with pytest.raises(AuthenticationError):
            tokens.authenticate(forged)
