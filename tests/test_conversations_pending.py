"""Ordinary replies are answered first and applied right after; keywords before the answer;
a reply whose process stopped before applying it is applied by a sweep, and one that keeps
failing is left marked for an operator, never dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from models import PendingInbound
from models.base import utcnow
from services.conversations.pending import form_of
from tests.support import (
    WEBHOOK_SETTINGS,
    Org,
    applied,
    client_with,
    contact,
    inbound_form,
    messages,
    new_sid,
    own,
    phones,
    post_inbound,
    recipient,
    send,
)

NUMBER = "+14155550100"


@pytest.fixture
async def hooked(mongo_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    # Sweeps often and soon, so a stranded reply is taken up within the test.
    async with client_with(
        mongo_uri, **WEBHOOK_SETTINGS, inbound_sweep_seconds=0.05, inbound_retry_seconds=0.2
    ) as http:
        http.base_url = httpx.URL("http://internal:8000")
        yield http


def form(frm: str, body: str, sid: str | None = None) -> dict[str, str]:
    return inbound_form(frm=frm, to=NUMBER, body=body, sid=sid)


async def test_an_opt_out_is_applied_before_the_webhook_answers(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    alice = phones(1)[0]["phoneNumber"]
    await post_inbound(hooked, form(alice, " stop "))
    # No waiting for the workers: the answer came after the opt-out was written.
    found = await contact(org, alice)
    assert found is not None and found["optedOut"] is True
    assert await PendingInbound.get_pymongo_collection().count_documents({}) == 0


async def test_a_reply_left_pending_by_a_stopped_process_is_applied_by_a_sweep(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await send(org, 2, tmp_path)
    alice = phones(1)[0]["phoneNumber"]
    # Accepted by a process that stopped before applying it: only the pending record exists.
    sid = new_sid()
    await PendingInbound.get_pymongo_collection().insert_one(
        {
            "_id": sid,
            "form": form(alice, "yes, call me", sid),
            "receivedAt": utcnow() - timedelta(minutes=5),
            "attempts": 0,
            "failed": False,
        }
    )
    await applied(sid)
    [stored] = await messages(org)
    assert stored["body"] == "yes, call me" and str(stored["campaignId"]) == campaign_id
    assert (await recipient(org, campaign_id, alice))["replied"] is True
    # Twilio retrying it afterwards stores nothing more.
    await post_inbound(hooked, form(alice, "yes, call me", sid))
    await applied(sid)
    assert len(await messages(org)) == 1


async def test_a_reply_that_keeps_failing_is_marked_failed_and_kept(
    hooked: httpx.AsyncClient,
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    # A record no reply can be made of (its form is not the webhook's strings): applying it
    # fails every time.
    sid = new_sid()
    await PendingInbound.get_pymongo_collection().insert_one(
        {
            "_id": sid,
            "form": {"MessageSid": 5, "From": 7, "To": NUMBER, "Body": "hello"},
            "receivedAt": utcnow() - timedelta(minutes=5),
            "attempts": 0,
            "failed": False,
        }
    )
    collection = PendingInbound.get_pymongo_collection()
    for _ in range(500):
        row = await collection.find_one({"_id": sid})
        assert row is not None, "a failing reply must never be dropped"
        if row["failed"]:
            break
        await asyncio.sleep(0.02)
    assert row is not None and row["failed"] is True and row["attempts"] == 5
    assert form_of(row["form"])["Body"] == "hello"
    metrics = (await hooked.get("/metrics")).text
    assert 'campaign_webhook_events_total{kind="inbound",outcome="failed"}' in metrics
    # Others' replies still go through.
    good = form(phones(1)[0]["phoneNumber"], "still here")
    await post_inbound(hooked, good)
    await applied(good["MessageSid"])
    assert [m["body"] for m in await messages(org)] == ["still here"]


async def test_a_reply_with_fields_no_document_could_name_is_accepted_and_applied(
    hooked: httpx.AsyncClient,
) -> None:
    """The form is kept as pairs: a field named like an operator or a path (a provider adding
    fields, or a hostile signed request) is stored, not answered with a 500."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    odd = {**form(phones(1)[0]["phoneNumber"], "odd fields"), "$where": "1", "a.b": "x"}
    answer = await post_inbound(hooked, odd)
    assert answer.status_code == 200, answer.text
    await applied(odd["MessageSid"])
    assert [m["body"] for m in await messages(org)] == ["odd fields"]
