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


def principal(org: ObjectId | None = None, user: ObjectId | None = None) -> Any:
    """Returns a verified-looking principal for service-level tests."""
    from core.auth import Principal

    return Principal(user or ObjectId(), org or ObjectId(), "Alex Rep", ("rep",))


async def make_contact(
    org: ObjectId, phone: str, *, id: ObjectId | str | None = None, **fields: Any
) -> Any:
    """Inserts a contact of `org` directly, as an earlier import would have."""
    from beanie import PydanticObjectId

    from models import Contact
    from services.storage.tenancy import Tenant

    contact = Contact(organizationId=PydanticObjectId(org), phoneNumber=phone, **fields)
    if id is not None:
        contact.id = PydanticObjectId(id)
    return await Tenant(principal(org)).insert(contact)


async def counts(*names: str) -> dict[str, int]:
    """Returns document counts of the app's collections in the current test database."""
    from models import Campaign, Contact, IdempotencyRecord, Recipient, User

    models = {
        "campaigns": Campaign,
        "contacts": Contact,
        "recipients": Recipient,
        "users": User,
        "idempotency_keys": IdempotencyRecord,
    }
    out = {}
    for name in names or tuple(models):
        out[name] = await models[name].get_pymongo_collection().count_documents({})
    return out


def future(days: int = 30) -> str:
    """Returns an ISO date `days` ahead in the legacy format."""
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) + timedelta(days=days)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def campaign_body(**overrides: Any) -> dict[str, Any]:
    """Returns a valid legacy request body; an override of `...` removes that key."""
    base: dict[str, Any] = {
        "name": "Spring outreach",
        "message": "Hi {{firstName|there}}",
        "newContacts": [{"firstName": "Ana", "phoneNumber": "+14155550101"}],
        "scheduleDate": future(),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


async def create_campaign(http: Any, org: ObjectId, **overrides: Any) -> dict[str, Any]:
    """Creates a campaign of `org` through REST and returns its `data`."""
    response = await http.post(
        "/api/campaigns", json=campaign_body(**overrides), headers=auth(token(org=org))
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def phones(count: int, start: int = 0) -> list[dict[str, str]]:
    """Returns `count` distinct valid new contacts."""
    return [
        {"firstName": f"P{i}", "phoneNumber": f"+1212{2000000 + i:07d}"}
        for i in range(start, start + count)
    ]
