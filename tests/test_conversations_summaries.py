"""Conversation summaries (services/conversations/summaries.py): what the inbox lists is what
the thread's records say, whatever the writers' interleaving; pages walk the buckets without
a conversation twice or missing; filters hold; threads stored before summaries get theirs at
start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from models import Activity, ConversationEvent, ConversationSummary, Message, MigrationRecord
from services.conversations import summaries
from services.storage import migrations
from services.storage.tenancy import Tenant
from tests.support import (
    ASSIGN,
    READ,
    WEBHOOK_SETTINGS,
    CommandLog,
    Org,
    client_with,
    contact,
    contact_id,
    gql,
    inbox,
    own,
    phones,
    recipient,
    rows,
    send,
    signed,
    status_path,
    text,
)

NUMBER = "+14155550100"
ALICE, BOB = "+12122000000", "+12122000001"
STRANGER = "+12123000000"  # not among `phones`
SEND = """
mutation ($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id } userErrors { field code } }
}"""


async def rep_says(org: Org, contact: str, body: str) -> dict[str, Any]:
    values = {"contactId": contact, "body": body, "idempotencyKey": uuid.uuid4().hex}
    answer = await gql(org.client, SEND, {"input": values}, org.headers)
    assert answer["data"]["sendMessage"]["userErrors"] == [], answer
    return answer


async def expected_from_records(tenant: Tenant, contact: ObjectId) -> tuple[int, ObjectId, int]:
    """Unread count, newest stored message and newest activity number, from the raw records
    (what the summary must say, computed independently of it)."""
    stored = await tenant.raw_find(Message, {"contactId": contact}).to_list()
    events = await tenant.raw_find(ConversationEvent, {"contactId": contact}).to_list()
    entries = await tenant.raw_find(Activity, {"contactId": contact}).to_list()
    read_at = max((e["at"] for e in events if e["kind"] == "read"), default=None)
    unread = sum(
        1
        for m in stored
        if m["direction"] == "inbound" and (read_at is None or m["createdAt"] > read_at)
    )
    newest = max(stored, key=lambda m: (m["createdAt"], m["_id"]))
    assert len(entries) == len(stored)
    return unread, newest["_id"], max(int(e["n"]) for e in entries)


async def test_racing_writers_of_one_contact_leave_its_summary_as_its_records_say(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    await text(hooked, frm=ALICE, to=NUMBER, body="first")
    alice = await contact_id(org, ALICE)
    for round_ in range(2):
        jobs: list[Coroutine[Any, Any, object]] = [
            text(hooked, frm=ALICE, to=NUMBER, body=f"in {round_}.{i}") for i in range(8)
        ]
        jobs += [rep_says(org, alice, f"out {round_}.{i}") for i in range(3)]
        jobs += [gql(hooked, READ, {"id": alice}, org.headers) for _ in range(2)]
        jobs += [gql(hooked, ASSIGN, {"id": alice, "user": str(org.user)}, org.headers)]
        jobs += [text(hooked, frm=BOB, to=NUMBER, body=f"bob {round_}.{i}") for i in range(3)]
        await asyncio.gather(*jobs)

    tenant = org.tenant()
    for phone in (ALICE, BOB):
        found = await contact(org, phone)
        assert found is not None
        kept = await summaries.stored(tenant, found["_id"])
        assert kept is not None
        assert kept == await summaries.compute(tenant, found["_id"])
        unread, newest, n = await expected_from_records(tenant, found["_id"])
        assert (kept.unreadCount, kept.lastStored, kept.n) == (unread, newest, n)
    page = await inbox(org)
    assert sorted(e["node"]["contact"]["phoneNumber"] for e in page["edges"]) == [ALICE, BOB]
    # Bob's first messages raced to create his summary: it is counted once.
    total = await gql(hooked, "{ conversations(first: 1) { totalCount } }", None, org.headers)
    assert total["data"]["conversations"]["totalCount"] == 2
    [node] = [e["node"] for e in page["edges"] if e["node"]["contact"]["phoneNumber"] == ALICE]
    assert node["owner"] == {"id": str(org.user)}


async def test_a_burst_of_refreshes_of_one_thread_takes_turns(mongo_uri: str) -> None:
    """Refreshes of one contact asked for at once in one process are answered by two turns
    (the one running, then one that reads after every change asked about), not one write
    each racing the others: a chatty thread's burst no longer costs a refresh per message."""
    log = CommandLog()
    async with client_with(mongo_uri, [log], **WEBHOOK_SETTINGS) as http:
        http.base_url = httpx.URL("http://internal:8000")
        org = Org(http)
        await own(http, org, NUMBER)
        await text(http, frm=ALICE, to=NUMBER, body="hello")
        alice = ObjectId(await contact_id(org, ALICE))
        tenant = org.tenant()
        log.counting = True
        answers = await asyncio.gather(*(summaries.refresh(tenant, alice) for _ in range(20)))
        log.counting = False
        kept = await summaries.stored(tenant, alice)
    assert kept is not None and all(answer == kept for answer in answers)
    writes = [c for c in log.seen if c[1] == ConversationSummary.Settings.name and c[0] == "update"]
    assert 1 <= len(writes) <= 2, log.seen


async def test_an_older_state_written_last_is_put_right_by_its_own_writer(
    hooked: httpx.AsyncClient,
) -> None:
    """The interleaving a race may produce, step by step: a writer computes, another writer's
    change lands and is summarized, then the first writer's older state is written."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    await text(hooked, frm=ALICE, to=NUMBER, body="one")
    tenant = org.tenant()
    alice = ObjectId(await contact_id(org, ALICE))
    older = await summaries.compute(tenant, alice)
    assert older is not None and older.unreadCount == 1
    await text(hooked, frm=ALICE, to=NUMBER, body="two")
    newer = await summaries.stored(tenant, alice)
    assert newer is not None and (newer.lastMessage.body, newer.unreadCount) == ("two", 2)
    assert await summaries.refresh(tenant, alice, computed=older) == newer
    assert await summaries.stored(tenant, alice) == newer
    assert rows(await inbox(org)) == [(ALICE, "two", 2)]


async def test_pages_walk_every_bucket_once_while_a_conversation_moves_up(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    people = [p["phoneNumber"] for p in phones(130)]
    for phone in people:  # one after the other: the inbox order is known
        await text(hooked, frm=phone, to=NUMBER, body=f"from {phone}")
    first = await inbox(org, first=20)
    listed = [r[0] for r in rows(first)]
    assert listed == list(reversed(people))[:20]
    await text(hooked, frm=people[0], to=NUMBER, body="again")  # the oldest moves to the top
    after = first["pageInfo"]["endCursor"]
    while True:
        page = await inbox(org, first=20, after=after)
        listed += [r[0] for r in rows(page)]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert listed == list(reversed(people))[:-1]  # each once; the one that moved is above
    assert rows(await inbox(org, first=1)) == [(people[0], "again", 2)]
    total = await gql(hooked, "{ conversations(first: 1) { totalCount } }", None, org.headers)
    assert total["data"]["conversations"]["totalCount"] == 130


async def test_filters_by_campaign_unread_and_owner_hold_on_summaries(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await send(org, 3, tmp_path)
    people = [p["phoneNumber"] for p in phones(3)]
    for phone in people[:2]:
        await text(hooked, frm=phone, to=NUMBER, body="interested")
    await text(hooked, frm=STRANGER, to=NUMBER, body="who is this?")
    replied = await inbox(org, filter={"campaignId": campaign_id})
    assert [r[0] for r in rows(replied)] == [people[1], people[0]]
    await gql(hooked, READ, {"id": await contact_id(org, people[1])}, org.headers)
    assert [r[0] for r in rows(await inbox(org, filter={"unread": True}))] == [STRANGER, people[0]]
    await gql(
        hooked, ASSIGN, {"id": await contact_id(org, STRANGER), "user": str(org.user)}, org.headers
    )
    mine = await inbox(org, filter={"assignedTo": str(org.user)})
    assert [r[0] for r in rows(mine)] == [STRANGER]
    other = await inbox(org, filter={"assignedTo": str(ObjectId()), "unread": True})
    assert other["edges"] == []


async def test_threads_stored_before_summaries_get_theirs_at_start(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    for phone, said in ((ALICE, "a1"), (BOB, "b1"), (ALICE, "a2")):
        await text(hooked, frm=phone, to=NUMBER, body=said)
    expected = rows(await inbox(org))
    # The previous layout: the same records, no summaries, migration 5 not applied.
    await ConversationSummary.get_pymongo_collection().delete_many({"organizationId": org.id})
    await MigrationRecord.get_pymongo_collection().delete_many({"version": 5})
    assert rows(await inbox(org)) == []
    assert await migrations.migrate() == [5]
    assert rows(await inbox(org)) == expected == [(ALICE, "a2", 2), (BOB, "b1", 1)]
    total = await gql(hooked, "{ conversations(first: 1) { totalCount } }", None, org.headers)
    assert total["data"]["conversations"]["totalCount"] == 2


async def test_a_campaign_send_and_its_report_reach_the_summary_of_a_conversation(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    talking = phones(1)[0]["phoneNumber"]
    await text(hooked, frm=talking, to=NUMBER, body="hello?")
    await gql(hooked, READ, {"id": await contact_id(org, talking)}, org.headers)
    campaign_id = await send(org, 2, tmp_path, message="Spring offer")
    query = "{ conversations { edges { node { contact { phoneNumber } unreadCount lastMessage {"
    query += " body direction status } } } } }"
    body = await gql(hooked, query, None, org.headers)
    # The send is the thread's last message; it does not move the conversation, and the
    # contact the campaign alone reached has none.
    assert [e["node"] for e in body["data"]["conversations"]["edges"]] == [
        {
            "contact": {"phoneNumber": talking},
            "unreadCount": 0,
            "lastMessage": {"body": "Spring offer", "direction": "OUTBOUND", "status": "sent"},
        }
    ]
    row = await recipient(org, campaign_id, talking)
    path = status_path(row["_id"], org.id)
    form = {"MessageSid": row["providerMessageId"], "MessageStatus": "delivered"}
    answer = await hooked.post(path, data=form, headers=signed(path, form))
    assert answer.status_code == 204, answer.text
    body = await gql(hooked, query, None, org.headers)
    [edge] = body["data"]["conversations"]["edges"]
    assert edge["node"]["lastMessage"]["status"] == "delivered"


async def test_a_page_reads_past_buckets_a_chatty_conversation_left_empty(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    people = [p["phoneNumber"] for p in phones(30, 500)]
    for phone in people:
        await text(hooked, frm=phone, to=NUMBER, body="hi")
    for start in range(0, 160, 20):  # numbers 30 to 189: buckets 1 and 2 end up empty
        await asyncio.gather(
            *(text(hooked, frm=ALICE, to=NUMBER, body=f"{i}") for i in range(start, start + 20))
        )
    first = await inbox(org, first=20)
    assert [r[0] for r in rows(first)] == [ALICE, *reversed(people[-19:])]
    rest = await inbox(org, first=20, after=first["pageInfo"]["endCursor"])
    assert [r[0] for r in rows(rest)] == list(reversed(people[:11]))
    assert rest["pageInfo"]["hasNextPage"] is False
