"""The conversation routes of the legacy REST API: the same answers as GraphQL, in the
envelope; another organization's contact is a 404 like a missing one."""

from __future__ import annotations

import httpx
from bson import ObjectId

from tests.support import Org, contact, make_contact, own, text

NUMBER = "+14155550100"
ALICE = "+12122000000"


async def test_the_inbox_and_a_thread_over_rest(hooked: httpx.AsyncClient) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    await text(hooked, frm=ALICE, to=NUMBER, body="yes, call me")
    found = await contact(org, ALICE)
    assert found is not None
    alice = str(found["_id"])

    answer = await hooked.get("/api/conversations", headers=org.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True and body["pagination"]["hasMore"] is False
    [conversation] = body["data"]
    assert conversation["contact"]["_id"] == alice
    assert conversation["unreadCount"] == 1 and conversation["owner"] is None
    assert conversation["lastMessage"]["body"] == "yes, call me"
    assert conversation["lastMessage"]["from"] == ALICE
    assert conversation["lastMessage"]["createdAt"].endswith("Z")

    headers = {"Idempotency-Key": "rest-1", **org.headers}
    sent = await hooked.post(
        f"/api/contacts/{alice}/messages", json={"body": "Calling you at 10"}, headers=headers
    )
    assert sent.status_code == 201, sent.text
    again = await hooked.post(
        f"/api/contacts/{alice}/messages", json={"body": "Calling you at 10"}, headers=headers
    )
    assert again.json() == sent.json()
    assert sent.json()["data"]["direction"] == "outbound"

    thread = await hooked.get(f"/api/contacts/{alice}/messages?limit=1", headers=org.headers)
    # her first message from the organization: with the opt-out footer
    assert [m["body"] for m in thread.json()["data"]] == [
        "Calling you at 10\nReply STOP to opt out"
    ]
    cursor = thread.json()["pagination"]["nextCursor"]
    older = await hooked.get(
        f"/api/contacts/{alice}/messages?limit=1&after={cursor}", headers=org.headers
    )
    assert [m["body"] for m in older.json()["data"]] == ["yes, call me"]
    assert older.json()["pagination"] == {"limit": 1, "hasMore": False, "nextCursor": None}


async def test_another_organizations_contact_is_404_like_a_missing_one(
    hooked: httpx.AsyncClient,
) -> None:
    org, other = Org(hooked), Org(hooked)
    alice = await make_contact(org.id, ALICE)
    for contact_id in (str(alice.id), str(ObjectId())):
        read = await hooked.get(f"/api/contacts/{contact_id}/messages", headers=other.headers)
        assert read.status_code == 404
        assert read.json()["success"] is False
        headers = {"Idempotency-Key": f"k-{contact_id}", **other.headers}
        sent = await hooked.post(
            f"/api/contacts/{contact_id}/messages", json={"body": "hi"}, headers=headers
        )
        assert sent.status_code == 404
        assert sent.json()["errors"][0]["code"] == "NOT_FOUND"
    listed = await hooked.get("/api/conversations", headers=other.headers)
    assert listed.json()["data"] == []


async def test_an_opted_out_contact_is_a_conflict(hooked: httpx.AsyncClient) -> None:
    org = Org(hooked)
    alice = await make_contact(org.id, ALICE, optedOut=True)
    sent = await hooked.post(
        f"/api/contacts/{alice.id}/messages",
        json={"body": "hi", "idempotencyKey": "k-1"},
        headers=org.headers,
    )
    assert sent.status_code == 409
    assert sent.json()["errors"] == [
        {"field": "contactId", "code": "OPTED_OUT", "message": sent.json()["errors"][0]["message"]}
    ]


async def test_a_page_size_out_of_range_is_refused_like_every_list(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    found = await make_contact(org.id, ALICE)
    for path in ("/api/conversations?limit=500", f"/api/contacts/{found.id}/messages?limit=0"):
        answer = await hooked.get(path, headers=org.headers)
        assert answer.status_code == 400, path
        [error] = answer.json()["errors"]
        assert (error["field"], error["code"]) == ("limit", "INVALID_PAGE_SIZE"), path
