"""The rep's side: the inbox (newest activity first, unread counts, owners), a contact's
thread both ways, and another organization's conversations behaving as missing ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from tests.support import (
    ASSIGN,
    READ,
    Org,
    contact_id,
    gql,
    inbox,
    make_contact,
    own,
    rows,
    send,
    text,
)

NUMBER = "+14155550100"
ALICE, BOB, CARL = "+12122000000", "+12122000001", "+12122000002"

THREAD = """
query ($id: ID!, $first: Int, $after: String) {
  contact(id: $id) {
    messages(first: $first, after: $after) {
      edges { node { body direction status campaign { id } contact { phoneNumber } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


async def test_the_inbox_shows_newest_activity_first_with_unread_counts(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    for phone, said in ((ALICE, "a1"), (BOB, "b1"), (ALICE, "a2"), (CARL, "c1"), (ALICE, "a3")):
        await text(hooked, frm=phone, to=NUMBER, body=said)
    page = await inbox(org)
    assert rows(page) == [(ALICE, "a3", 3), (CARL, "c1", 1), (BOB, "b1", 1)]
    assert page["pageInfo"]["hasNextPage"] is False

    # Paging: BOB answers between two pages; no conversation shows twice or goes missing.
    first = await inbox(org, first=2)
    assert rows(first) == [(ALICE, "a3", 3), (CARL, "c1", 1)]
    assert first["pageInfo"]["hasNextPage"] is True
    await text(hooked, frm=CARL, to=NUMBER, body="c2")
    rest = await inbox(org, first=2, after=first["pageInfo"]["endCursor"])
    assert rows(rest) == [(BOB, "b1", 1)]

    body = await gql(hooked, READ, {"id": await contact_id(org, ALICE)}, org.headers)
    assert body["data"]["markConversationRead"] == {
        "conversation": {"unreadCount": 0},
        "userErrors": [],
    }
    await text(hooked, frm=ALICE, to=NUMBER, body="a4")
    assert rows(await inbox(org, filter={"unread": True})) == [
        (ALICE, "a4", 1),
        (CARL, "c2", 2),
        (BOB, "b1", 1),
    ]
    await gql(hooked, READ, {"id": await contact_id(org, BOB)}, org.headers)
    assert rows(await inbox(org, filter={"unread": False})) == [(BOB, "b1", 0)]
    assert rows(await inbox(org, filter={"search": "2122000002"})) == [(CARL, "c2", 2)]
    total = await gql(hooked, "{ conversations(first: 1) { totalCount } }", None, org.headers)
    assert total["data"]["conversations"]["totalCount"] == 3


async def test_owners_follow_assignment_then_the_contacts_owner(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    owner = ObjectId()
    await make_contact(org.id, ALICE, assignedTo=owner)
    await text(hooked, frm=ALICE, to=NUMBER, body="hi")
    await text(hooked, frm=BOB, to=NUMBER, body="hello")
    page = await inbox(org)
    assert [e["node"]["owner"] for e in page["edges"]] == [None, {"id": str(owner)}]
    me = str(org.user)
    body = await gql(hooked, ASSIGN, {"id": await contact_id(org, BOB), "user": me}, org.headers)
    assert body["data"]["assignConversation"] == {
        "conversation": {"owner": {"id": me}},
        "userErrors": [],
    }
    mine = await inbox(org, filter={"assignedTo": me})
    assert [e["node"]["contact"]["phoneNumber"] for e in mine["edges"]] == [BOB]
    stranger = str(ObjectId())
    body = await gql(
        hooked, ASSIGN, {"id": await contact_id(org, BOB), "user": stranger}, org.headers
    )
    assert body["data"]["assignConversation"]["userErrors"] == [
        {"field": ["userId"], "code": "UNKNOWN_USER"}
    ]


async def test_a_thread_holds_campaign_sends_and_replies_newest_first(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await send(org, 1, tmp_path, message="Hi {{firstName}}, still interested?")
    await text(hooked, frm=ALICE, to=NUMBER, body="yes!")
    await text(hooked, frm=ALICE, to=NUMBER, body="call me")
    alice = await contact_id(org, ALICE)
    body = await gql(hooked, THREAD, {"id": alice, "first": 2}, org.headers)
    messages = body["data"]["contact"]["messages"]
    assert [(e["node"]["body"], e["node"]["direction"]) for e in messages["edges"]] == [
        ("call me", "INBOUND"),
        ("yes!", "INBOUND"),
    ]
    assert messages["edges"][0]["node"]["campaign"] == {"id": campaign_id}
    assert messages["edges"][0]["node"]["contact"] == {"phoneNumber": ALICE}
    older = await gql(
        hooked,
        THREAD,
        {"id": alice, "first": 2, "after": messages["pageInfo"]["endCursor"]},
        org.headers,
    )
    [sent] = older["data"]["contact"]["messages"]["edges"]
    assert sent["node"]["body"] == "Hi P0, still interested?"
    assert (sent["node"]["direction"], sent["node"]["status"]) == ("OUTBOUND", "sent")
    assert sent["node"]["campaign"] == {"id": campaign_id}
    assert older["data"]["contact"]["messages"]["pageInfo"]["hasNextPage"] is False
    # Campaign sends alone start no conversation: only ALICE, who replied, is in the inbox.
    await send(org, 3, tmp_path, name="Second")
    assert [r[0] for r in rows(await inbox(org))] == [ALICE]


async def test_another_organizations_conversations_are_not_found(
    hooked: httpx.AsyncClient,
) -> None:
    org, other = Org(hooked), Org(hooked)
    await own(hooked, org, NUMBER)
    await text(hooked, frm=ALICE, to=NUMBER, body="private")
    alice = await contact_id(org, ALICE)
    assert (await inbox(other))["edges"] == []
    body = await gql(hooked, THREAD, {"id": alice}, other.headers)
    assert body == {"data": {"contact": None}}
    query = "query ($id: ID!) { conversation(contactId: $id) { unreadCount } }"
    assert (await gql(hooked, query, {"id": alice}, other.headers))["data"] == {
        "conversation": None
    }
    assert (await gql(hooked, query, {"id": alice}, org.headers))["data"] == {
        "conversation": {"unreadCount": 1}
    }
    for mutation, variables in ((READ, {"id": alice}), (ASSIGN, {"id": alice, "user": None})):
        theirs = await gql(hooked, mutation, variables, other.headers)
        missing = await gql(hooked, mutation, {**variables, "id": str(ObjectId())}, other.headers)
        assert theirs == missing
        payload = next(iter(theirs["data"].values()))
        assert payload["userErrors"] == [{"field": ["contactId"], "code": "NOT_FOUND"}]
    # The read above did not touch the owner's unread count.
    assert (await gql(hooked, query, {"id": alice}, org.headers))["data"] == {
        "conversation": {"unreadCount": 1}
    }


async def test_activity_numbers_stay_dense_and_unique_under_a_burst(
    hooked: httpx.AsyncClient,
) -> None:
    import asyncio

    from models.conversation import Direction
    from services.conversations import activity
    from services.storage.tenancy import Tenant

    tenant = Tenant.for_organization(ObjectId())
    numbers = await asyncio.gather(
        *(
            activity.append(
                tenant,
                contact_id=ObjectId(),
                message_id=ObjectId(),
                direction=Direction.INBOUND,
                at=Tenant.now(),
            )
            for _ in range(40)
        )
    )
    assert sorted(numbers) == list(range(40))
    assert await activity.last_entry(tenant) == 39


async def test_a_burst_skips_numbers_another_process_took_and_stays_dense(
    hooked: httpx.AsyncClient,
) -> None:
    import asyncio

    from models import Activity
    from models.conversation import Direction
    from services.conversations import activity
    from services.storage.tenancy import Tenant

    tenant = Tenant.for_organization(ObjectId())

    def entry() -> Any:
        return activity.append(
            tenant,
            contact_id=ObjectId(),
            message_id=ObjectId(),
            direction=Direction.INBOUND,
            at=Tenant.now(),
        )

    assert await entry() == 0  # this process now expects 1 next
    # Another process appends 1 and 2 meanwhile (this one's hint does not know).
    for n in (1, 2):
        document = Activity(
            id=f"{tenant.organization_id}:{n}",
            organizationId=tenant.organization_id,
            n=n,
            page=0,
            contactId=ObjectId(),
            messageId=ObjectId(),
            direction=Direction.INBOUND,
            at=Tenant.now(),
        )
        await tenant.insert(document)
    numbers = await asyncio.gather(*(entry() for _ in range(30)))
    assert sorted(numbers) == list(range(3, 33))
    assert await activity.last_entry(tenant) == 32
    rows = await tenant.raw_find(Activity, {}, {"n": 1}).to_list()
    assert sorted(row["n"] for row in rows) == list(range(33))


async def test_a_deleted_contacts_conversation_leaves_the_inbox_and_its_count(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    for phone, said in ((ALICE, "a1"), (BOB, "b1")):
        await text(hooked, frm=phone, to=NUMBER, body=said)
    count = "{ conversations(first: 5) { totalCount } }"
    body = await gql(hooked, count, None, org.headers)
    assert body["data"]["conversations"]["totalCount"] == 2

    delete = "mutation ($id: ID!) { deleteContact(id: $id) { userErrors { code } } }"
    body = await gql(hooked, delete, {"id": await contact_id(org, BOB)}, org.headers)
    assert body["data"]["deleteContact"]["userErrors"] == [], body
    assert rows(await inbox(org)) == [(ALICE, "a1", 1)]
    body = await gql(hooked, count, None, org.headers)
    assert body["data"]["conversations"]["totalCount"] == 1

    # The number writes again: a new contact, a new conversation, counted once.
    await text(hooked, frm=BOB, to=NUMBER, body="b2")
    assert rows(await inbox(org)) == [(BOB, "b2", 1), (ALICE, "a1", 1)]
    body = await gql(hooked, count, None, org.headers)
    assert body["data"]["conversations"]["totalCount"] == 2
