"""Small builders for test data; plain functions, not nested fixtures."""

from __future__ import annotations

import time
from typing import Any

import jwt
from bson import ObjectId

TEST_JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"


def claims(
    *, org: ObjectId | str | None = None, user: ObjectId | str | None = None, **extra: Any
) -> dict[str, Any]:
    """Returns valid token claims for a (new, unless given) organization and user."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": str(user or ObjectId()),
        "org_id": str(org or ObjectId()),
        "name": "Alex Rep",
        "roles": ["rep"],
        "iat": now,
        "exp": now + 600,
    }
    base.update(extra)
    return base


def token(secret: str = TEST_JWT_SECRET, algorithm: str = "HS256", **claim_args: Any) -> str:
    """Signs `claims(...)` with the test secret."""
    return jwt.encode(claims(**claim_args), secret, algorithm=algorithm)


def auth(tok: str) -> dict[str, str]:
    """Returns the Authorization header for a token."""
    return {"Authorization": f"Bearer {tok}"}


async def gql(
    http: Any,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Posts a GraphQL operation and returns the decoded body (asserting HTTP 200)."""
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
