"""The rep who creates a campaign is recorded once per organization, by one writer.

A new rep's first requests race; the unique `(organizationId, userId)` insert picks the one that
writes, and the others read. A known rep's request writes only when the token's profile changed.
"""

from __future__ import annotations

import asyncio

import httpx
from bson import ObjectId

from models import User
from tests.support import auth, campaign_body, token


async def test_a_new_reps_racing_first_campaigns_record_one_user(client: httpx.AsyncClient) -> None:
    org, user = ObjectId(), ObjectId()
    headers = auth(token(org=org, user=user, name="Dana Rep"))
    responses = await asyncio.gather(
        *(client.post("/api/campaigns", json=campaign_body(), headers=headers) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    stored = await User.find({"organizationId": org}).to_list()
    assert [(u.userId, u.fullName) for u in stored] == [(user, "Dana Rep")]


async def test_a_known_rep_is_not_rewritten_until_the_profile_changes(
    client: httpx.AsyncClient,
) -> None:
    org, user = ObjectId(), ObjectId()
    for _ in range(2):
        response = await client.post(
            "/api/campaigns", json=campaign_body(), headers=auth(token(org=org, user=user))
        )
        assert response.status_code == 201
    first = await User.find_one({"organizationId": org, "userId": user})
    assert first is not None and first.createdAt == first.updatedAt

    renamed = auth(token(org=org, user=user, name="Alex Renamed", roles=["admin"]))
    assert (
        await client.post("/api/campaigns", json=campaign_body(), headers=renamed)
    ).status_code == 201
    after = await User.find_one({"organizationId": org, "userId": user})
    assert after is not None
    assert (after.fullName, after.roles) == ("Alex Renamed", ["admin"])
    assert after.updatedAt > first.updatedAt
    assert await User.find({"organizationId": org}).count() == 1
