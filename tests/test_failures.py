"""Who did not get a campaign's message, in plain words, and `retryFailed` sending once more to
the failures a retry can help: same answers from both APIs, once per recipient, never to an
invalid number, an opt-out or a carrier-filtered message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from models import Recipient, StepSend
from services.sending.dispatcher import Dispatcher
from services.sending.provider import UNSUBSCRIBED
from services.sending.providers import SimulatedProvider
from tests.support import (
    FAST,
    Clock,
    Org,
    gql,
    ledger_keys,
    phones,
    signed,
    status_path,
    until_done,
)

FAILURES = (
    "query ($id: ID!) { campaign(id: $id) { failures { stage code reason retryable count step } } }"
)
RETRY = """
mutation ($id: ID!, $codes: [String!]) {
  retryFailed(id: $id, codes: $codes) {
    campaign { status stats { sent failed skipped retried } }
    userErrors { field code message }
  }
}"""


def phone(i: int) -> str:
    return phones(1, i)[0]["phoneNumber"]


async def report(org: Org, key: str, sid: str, status: str, code: str) -> None:
    path = status_path(key, org.id)
    form = {
        "MessageSid": sid,
        "MessageStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "ErrorCode": code,
    }
    answer = await org.client.post(path, data=form, headers=signed(path, form))
    assert answer.status_code == 204, answer.text


async def failures(org: Org, campaign_id: str) -> list[dict[str, Any]]:
    """The report over GraphQL, checked against REST's."""
    body = await gql(org.client, FAILURES, {"id": campaign_id}, org.headers)
    graphql: list[dict[str, Any]] = body["data"]["campaign"]["failures"]
    answer = await org.client.get(f"/api/campaigns/{campaign_id}/failures", headers=org.headers)
    assert answer.status_code == 200, answer.text
    rest = answer.json()["data"]
    assert [{**f, "stage": f["stage"].upper()} for f in rest] == graphql
    return graphql


async def retry(org: Org, campaign_id: str, codes: list[str] | None = None) -> dict[str, Any]:
    body = await gql(org.client, RETRY, {"id": campaign_id, "codes": codes}, org.headers)
    payload: dict[str, Any] = body["data"]["retryFailed"]
    return payload


async def test_failures_are_explained_and_only_retryable_ones_are_sent_again(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    campaign_id = await org.create(6)
    ledger = tmp_path / "ledger.jsonl"
    rules = {
        phone(0): "permanent:INVALID_NUMBER",
        phone(1): f"transient:TWILIO_UNREACHABLE:{FAST.send_attempts}",  # passes on attempt 5
        phone(4): f"permanent:{UNSUBSCRIBED}",
    }
    dispatcher = Dispatcher(SimulatedProvider(ledger, fail=rules), FAST)
    await org.mutate("sendCampaignNow", campaign_id)
    await until_done(org, campaign_id, dispatcher)
    rows = {
        row["_id"]: row
        for row in await org.tenant()
        .raw_find(Recipient, {"campaignId": ObjectId(campaign_id)})
        .to_list()
    }
    by_phone = {phone(i): row for i in range(6) for row in rows.values() if row["seq"] == i}
    unreachable, filtered = by_phone[phone(2)], by_phone[phone(3)]
    await report(
        org, str(unreachable["_id"]), unreachable["providerMessageId"], "undelivered", "30003"
    )
    await report(org, str(filtered["_id"]), filtered["providerMessageId"], "undelivered", "30007")

    assert [
        (f["stage"], f["code"], f["retryable"], f["count"])
        for f in await failures(org, campaign_id)
    ] == [
        ("DELIVERY", "30003", True, 1),
        ("DELIVERY", "30007", False, 1),
        ("SEND", "INVALID_NUMBER", False, 1),
        ("SEND", "TWILIO_UNREACHABLE", True, 1),
        ("SKIPPED", "OPTED_OUT", False, 1),
    ]
    report_30003 = next(f for f in await failures(org, campaign_id) if f["code"] == "30003")
    assert "unreachable" in report_30003["reason"]

    # Asking for a code a retry cannot help is refused by field, in both APIs.
    refused = await retry(org, campaign_id, ["30003", "30007"])
    assert refused["userErrors"] == [
        {
            "field": ["codes", "1"],
            "code": "NOT_RETRYABLE",
            "message": refused["userErrors"][0]["message"],
        }
    ]
    answer = await hooked.post(
        f"/api/campaigns/{campaign_id}/retry-failed", json={"codes": ["30007"]}, headers=org.headers
    )
    assert answer.status_code == 400
    assert [(e["field"], e["code"]) for e in answer.json()["errors"]] == [
        ("codes.0", "NOT_RETRYABLE")
    ]

    started = await retry(org, campaign_id)
    assert started["userErrors"] == []
    assert started["campaign"]["status"] == "SENDING"
    assert started["campaign"]["stats"]["retried"] == 2
    again = await retry(org, campaign_id)  # while the first runs
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_TRANSITION"]
    busy = await hooked.post(f"/api/campaigns/{campaign_id}/retry-failed", headers=org.headers)
    assert busy.status_code == 409

    done = await until_done(org, campaign_id, dispatcher)
    assert done["status"] == "completed"
    assert done["stats"] | {"successRate": None} == done["stats"] | {
        "sent": 4,
        "failed": 1,
        "skipped": 1,
        "retried": 2,
        "successRate": None,
    }
    keys = ledger_keys(ledger)
    assert set(keys.values()) == {1}
    resent = {key for key in keys if ":r" in key}
    assert resent == {f"{by_phone[phone(1)]['_id']}:r1", f"{unreachable['_id']}:r1"}
    assert (await org.campaign(campaign_id))["status"] == "completed"

    # A late report about the replaced message changes nothing; the new one's applies.
    await report(
        org, str(unreachable["_id"]), unreachable["providerMessageId"], "undelivered", "30003"
    )
    row = (await org.tenant().raw_find(Recipient, {"_id": unreachable["_id"]}).to_list())[0]
    assert row["deliveryStatus"] is None and row["status"] == "sent"
    await report(org, f"{unreachable['_id']}:r1", row["providerMessageId"], "delivered", "")
    row = (await org.tenant().raw_find(Recipient, {"_id": unreachable["_id"]}).to_list())[0]
    assert row["deliveryStatus"] == "delivered"
    assert [(f["stage"], f["code"]) for f in await failures(org, campaign_id)] == [
        ("DELIVERY", "30007"),
        ("SEND", "INVALID_NUMBER"),
        ("SKIPPED", "OPTED_OUT"),
    ]
    # Each recipient is resent at most once: nothing is left to retry.
    nothing = await retry(org, campaign_id)
    assert [e["code"] for e in nothing["userErrors"]] == ["NOTHING_TO_RETRY"]
    query = "query ($id: ID!) { campaign(id: $id) { history { action } } }"
    history = await gql(hooked, query, {"id": campaign_id}, org.headers)
    assert [h["action"] for h in history["data"]["campaign"]["history"]][-2:] == [
        "retry",
        "complete",
    ]


async def test_failed_follow_up_steps_are_listed_with_their_step_and_never_resent(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    one_step = [{"delayMinutes": 1, "message": "Still interested?"}]
    campaign_id = await org.create(3, followUps=one_step, isAutopilot=True)
    clock = Clock(datetime.now(UTC))
    provider = SimulatedProvider(tmp_path / "ledger.jsonl")
    dispatcher = Dispatcher(provider, replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    provider.fail[phone(0)] = "permanent:INVALID_NUMBER"  # after its first message went
    clock.advance(timedelta(minutes=2))
    await dispatcher.tick()
    await dispatcher.tick()
    assert (await org.campaign(campaign_id))["status"] == "completed"
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    second = next(row for row in rows if row["seq"] == 1)
    step = (await org.tenant().raw_find(StepSend, {"_id": f"{second['_id']}:1"}).to_list())[0]
    await report(org, f"{second['_id']}:1", step["providerMessageId"], "undelivered", "30003")

    assert [
        (f["stage"], f["code"], f["retryable"], f["count"], f["step"])
        for f in await failures(org, campaign_id)
    ] == [
        ("DELIVERY", "30003", True, 1, 1),
        ("SEND", "INVALID_NUMBER", False, 1, 1),
    ]
    # The first messages all went: retryFailed resends first messages only.
    nothing = await retry(org, campaign_id)
    assert [e["code"] for e in nothing["userErrors"]] == ["NOTHING_TO_RETRY"]


async def test_another_organizations_failures_do_not_exist(client: httpx.AsyncClient) -> None:
    org, other = Org(client), Org(client)
    campaign_id = await org.create(1)
    answer = await client.get(f"/api/campaigns/{campaign_id}/failures", headers=other.headers)
    assert answer.status_code == 404
    answer = await client.post(f"/api/campaigns/{campaign_id}/retry-failed", headers=other.headers)
    assert answer.status_code == 404
    body = await gql(client, RETRY, {"id": campaign_id, "codes": None}, other.headers)
    assert [e["code"] for e in body["data"]["retryFailed"]["userErrors"]] == ["NOT_FOUND"]
    # The owner's draft has nothing to retry yet: it is not completed.
    body = await gql(client, RETRY, {"id": campaign_id, "codes": None}, org.headers)
    assert [e["code"] for e in body["data"]["retryFailed"]["userErrors"]] == ["INVALID_TRANSITION"]
