"""A reply counts for the latest campaign that messaged the contact from that sender within
the organization's window: its recipient becomes `replied`, and the campaign's `replied` and
`replyRate` say so in both APIs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
from bson import ObjectId

from models import Recipient
from tests.support import (
    Org,
    contact,
    gql,
    messages,
    own,
    recipient,
    send,
    text,
)

NUMBER = "+14155550100"
ALICE, BOB, CARL = "+12122000000", "+12122000001", "+12122000002"
STATS = "query ($id: ID!) { campaign(id: $id) { stats { sent replied replyRate successRate } } }"


async def stats(org: Org, campaign_id: str) -> tuple[dict[str, object], dict[str, object]]:
    """The campaign's stats over REST and over GraphQL."""
    rest = (await org.campaign(campaign_id))["stats"]
    body = await gql(org.client, STATS, {"id": campaign_id}, org.headers)
    return rest, body["data"]["campaign"]["stats"]


async def move_back(org: Org, campaign_id: str, by: timedelta) -> None:
    """Pretends the campaign's messages went out `by` earlier."""
    tenant = org.tenant()
    rows = await tenant.raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    await tenant.update_each(Recipient, [(r["_id"], {"sentAt": r["sentAt"] - by}) for r in rows])


async def test_a_reply_marks_its_recipient_and_the_campaigns_reply_rate(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await send(org, 3, tmp_path)
    assert await stats(org, campaign_id) == (
        {
            "total": 3,
            "sent": 3,
            "failed": 0,
            "skipped": 0,
            "unknown": 0,
            "successRate": "100%",
            "replied": 0,
            "replyRate": "0%",
            "retried": 0,
        },
        {"sent": 3, "replied": 0, "replyRate": "0%", "successRate": "100%"},
    )
    await text(hooked, frm=ALICE, to=NUMBER, body="yes, call me")
    await text(hooked, frm=ALICE, to=NUMBER, body="tomorrow at 10?")
    rest, graphql = await stats(org, campaign_id)
    assert (rest["replied"], rest["replyRate"]) == (1, "33%")
    assert graphql == {"sent": 3, "replied": 1, "replyRate": "33%", "successRate": "100%"}
    row = await recipient(org, campaign_id, ALICE)
    assert row["replied"] is True and row["repliedAt"] is not None
    assert row["status"] == "sent"  # the sending state keeps its own field
    assert {str(m["campaignId"]) for m in await messages(org)} == {campaign_id}
    query = (
        "query ($id: ID!) { campaign(id: $id) { recipients(first: 3) "
        "{ edges { node { replied repliedAt } } } } }"
    )
    body = await gql(hooked, query, {"id": campaign_id}, org.headers)
    edges = body["data"]["campaign"]["recipients"]["edges"]
    assert [e["node"]["replied"] for e in edges] == [True, False, False]
    assert edges[0]["node"]["repliedAt"] is not None
    # Replies of two more contacts at once, each several times: each contact counts once.
    await asyncio.gather(
        *(text(hooked, frm=phone, to=NUMBER, body="ok") for phone in (BOB, CARL, BOB, CARL))
    )
    rest, graphql = await stats(org, campaign_id)
    assert (rest["replied"], rest["replyRate"], graphql["replied"]) == (3, "100%", 3)


async def test_a_reply_after_the_window_counts_for_no_campaign(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER, attributionWindowDays=2)
    campaign_id = await send(org, 2, tmp_path)
    await move_back(org, campaign_id, timedelta(days=3))
    await text(hooked, frm=ALICE, to=NUMBER, body="sorry, just saw this")
    assert (await stats(org, campaign_id))[1]["replied"] == 0
    [reply] = await messages(org)
    assert reply["campaignId"] is None
    assert (await recipient(org, campaign_id, ALICE)).get("replied") in (None, False)
    # Inside the window (1 day ago of 2): it counts.
    await move_back(org, campaign_id, timedelta(days=-2))
    await text(hooked, frm=BOB, to=NUMBER, body="yes")
    assert (await stats(org, campaign_id))[1]["replied"] == 1


async def test_a_reply_counts_for_the_latest_campaign_only(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    older = await send(org, 2, tmp_path)
    await move_back(org, older, timedelta(hours=5))
    newer = await send(org, 2, tmp_path, name="Follow-up")
    await text(hooked, frm=ALICE, to=NUMBER, body="still interested")
    assert (await stats(org, older))[1]["replied"] == 0
    assert (await stats(org, newer))[1]["replied"] == 1
    assert (await recipient(org, older, ALICE)).get("replied") in (None, False)
    assert (await recipient(org, newer, ALICE))["replied"] is True


async def test_keywords_are_not_replies(hooked: httpx.AsyncClient, tmp_path: Path) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER, helpText="Acme")
    campaign_id = await send(org, 2, tmp_path)
    await text(hooked, frm=ALICE, to=NUMBER, body="STOP")
    await text(hooked, frm=BOB, to=NUMBER, body="HELP")
    assert (await stats(org, campaign_id))[1]["replied"] == 0


async def test_the_first_reply_moves_the_contact_to_the_campaigns_stage(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await send(org, 2, tmp_path, contactStatusOnReply="Replied")
    assert (await org.campaign(campaign_id))["contactStatusOnReply"] == "Replied"
    await text(hooked, frm=ALICE, to=NUMBER, body="yes")
    alice, bob = await contact(org, ALICE), await contact(org, BOB)
    assert alice is not None and bob is not None
    assert (alice["contactStatus"], bob["contactStatus"]) == ("Replied", "New Lead")


async def test_another_organizations_reply_never_counts_here(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org, other = Org(hooked), Org(hooked)
    await own(hooked, org, NUMBER)
    await own(hooked, other, "+14155550200")
    campaign_id = await send(org, 2, tmp_path)
    await send(other, 2, tmp_path)
    await text(hooked, frm=ALICE, to="+14155550200", body="yes")
    assert (await stats(org, campaign_id))[1]["replied"] == 0
    # Nor can the other organization read this campaign's stats.
    body = await gql(hooked, STATS, {"id": campaign_id}, other.headers)
    assert body["data"]["campaign"] is None
