"""Autopilot follow-ups: step n goes `delayMinutes` after step n - 1 to the recipients who got
it and have not answered or opted out, once each, and a reply stored first always stops it.

The dispatcher runs on a test clock that starts at the real time (the first message's `sentAt`
is the clock's time; a step's, the real time) and is moved forward past each step's delay.
Replies arrive on the real clock, so a test's clock never runs far ahead of them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from bson import ObjectId

from core.clock import parse_clock
from models import BatchLease, FollowUpHandover, Message, Recipient, StepSend
from services.organizations.quiet_hours import SendWindow
from services.organizations.settings import OrganizationSettings
from services.sending import followups
from services.sending.dispatcher import Dispatcher
from services.sending.leases import lease_id
from services.sending.providers import SimulatedProvider, read_ledger
from tests.support import (
    FAST,
    Clock,
    Org,
    contact,
    gql,
    ledger_keys,
    own,
    phones,
    signed,
    status_path,
    text,
)

NUMBER = "+14155550100"
CADENCE = [
    {"delayMinutes": 60, "message": "Still interested, {{firstName|there}}?"},
    {"delayMinutes": 120, "message": "A quick reminder about your quote"},
    {"delayMinutes": 1440, "message": "Last message from us, {{firstName|there}}"},
]
READ = """
query ($id: ID!) {
  campaign(id: $id) {
    status isAutopilot nextSendAt
    followUps { delayMinutes message }
    followUpStats { step sent failed skipped replied pending }
    stats { sent failed replied }
    history { action step }
  }
}"""
THREAD = "query ($id: ID!) { contact(id: $id) { messages { edges { node { body } } } } }"
UPDATE = """
mutation ($id: ID!, $input: UpdateCampaignInput!) {
  updateCampaign(id: $id, input: $input) {
    campaign { isAutopilot followUps { delayMinutes } }
    userErrors { field code message }
  }
}"""


def phone(i: int) -> str:
    return phones(1, i)[0]["phoneNumber"]


async def read(org: Org, campaign_id: str) -> dict[str, Any]:
    """The campaign over GraphQL; REST's follow-up fields must say the same."""
    body = await gql(org.client, READ, {"id": campaign_id}, org.headers)
    campaign: dict[str, Any] = body["data"]["campaign"]
    rest = await org.campaign(campaign_id)
    assert rest["followUps"] == campaign["followUps"]
    assert rest["followUpStats"] == campaign["followUpStats"]
    return campaign


async def update(org: Org, campaign_id: str, **values: Any) -> dict[str, Any]:
    body = await gql(org.client, UPDATE, {"id": campaign_id, "input": values}, org.headers)
    payload: dict[str, Any] = body["data"]["updateCampaign"]
    return payload


def steps_sent(ledger: Path) -> Counter[int]:
    """Messages the provider accepted per step (0: the first message)."""
    keys = ledger_keys(ledger)
    assert set(keys.values()) <= {1}, "a message went twice"
    return Counter(int(key.split(":")[1]) if ":" in key else 0 for key in keys)


async def test_a_three_step_cadence_reaches_only_who_has_not_answered(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await org.create(50, followUps=CADENCE, isAutopilot=True)
    ledger = tmp_path / "ledger.jsonl"
    failing = {phone(10): "permanent:30003", phone(11): "permanent:30003"}
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(SimulatedProvider(ledger, fail=failing), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)

    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 48}
    campaign = await read(org, campaign_id)
    assert campaign["status"] == "SENDING"  # the steps are still to come
    assert campaign["followUps"] == [
        {"delayMinutes": c["delayMinutes"], "message": c["message"]} for c in CADENCE
    ]
    assert campaign["followUpStats"][0] == {
        "step": 1, "sent": 0, "failed": 0, "skipped": 0, "replied": 0, "pending": 48
    }  # fmt: skip
    # The next step's time is the campaign's next send.
    next_send = datetime.fromisoformat(campaign["nextSendAt"])
    assert timedelta(minutes=59) < next_send - clock.now < timedelta(minutes=61)

    for i in range(5):  # five answer, two opt out
        await text(hooked, frm=phone(i), to=NUMBER, body="yes, call me")
    for i in (5, 6):
        await text(hooked, frm=phone(i), to=NUMBER, body="STOP")
    clock.advance(timedelta(minutes=59))
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 48}  # not before the delay

    clock.advance(timedelta(minutes=2))
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 48, 1: 41}
    messaged = {entry["to"] for entry in read_ledger(ledger) if entry["key"].endswith(":1")}
    assert messaged.isdisjoint({phone(i) for i in range(12)} - {phone(i) for i in (7, 8, 9)})
    first = next(e for e in read_ledger(ledger) if e["key"].endswith(":1") and e["to"] == phone(20))
    assert first["body"] == "Still interested, P20?"

    await text(hooked, frm=phone(7), to=NUMBER, body="who is this?")  # after step 1
    await org.mutate("pauseCampaign", campaign_id)  # a pause between steps holds step 2
    clock.advance(timedelta(minutes=121))
    await dispatcher.tick()
    assert steps_sent(ledger)[2] == 0
    await org.mutate("resumeCampaign", campaign_id)
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 48, 1: 41, 2: 40}
    stats = (await read(org, campaign_id))["followUpStats"]
    assert stats[:2] == [
        {"step": 1, "sent": 41, "failed": 0, "skipped": 2, "replied": 1, "pending": 0},
        {"step": 2, "sent": 40, "failed": 0, "skipped": 0, "replied": 0, "pending": 0},
    ]
    assert stats[2]["pending"] == 40

    clock.advance(timedelta(minutes=1441))
    await dispatcher.tick()
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 48, 1: 41, 2: 40, 3: 40}
    campaign = await read(org, campaign_id)
    assert campaign["status"] == "COMPLETED"
    assert campaign["nextSendAt"] is None
    assert campaign["stats"] == {"sent": 48, "failed": 2, "replied": 6}  # the first message's
    assert [s["sent"] for s in campaign["followUpStats"]] == [41, 40, 40]
    assert [s["pending"] for s in campaign["followUpStats"]] == [0, 0, 0]
    steps = [(h["action"], h["step"]) for h in campaign["history"] if h["step"]]
    assert steps == [
        ("followUpStarted", 1),
        ("followUpEnded", 1),
        ("followUpStarted", 2),
        ("followUpEnded", 2),
        ("followUpStarted", 3),
        ("followUpEnded", 3),
    ]
    # The contact's thread shows the follow-ups it got, after the first message.
    found = await contact(org, phone(20))
    assert found is not None
    body = await gql(hooked, THREAD, {"id": str(found["_id"])}, org.headers)
    bodies = [e["node"]["body"] for e in body["data"]["contact"]["messages"]["edges"]]
    assert bodies == [
        "Last message from us, P20",
        "A quick reminder about your quote",
        "Still interested, P20?",
        "Hi P20",
    ]


async def test_autopilot_off_stops_the_steps_and_on_again_restarts_the_delay(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    one_step = [{"delayMinutes": 60, "message": "And again"}]

    # Switched off while sending: the campaign ends with its first messages.
    stopped = await org.create(5, followUps=one_step, isAutopilot=True)
    await org.mutate("sendCampaignNow", stopped)
    await dispatcher.tick()
    assert (await update(org, stopped, isAutopilot=False))["userErrors"] == []
    clock.advance(timedelta(minutes=61))
    await dispatcher.tick()
    campaign = await read(org, stopped)
    assert campaign["status"] == "COMPLETED"
    assert campaign["followUpStats"] == [
        {"step": 1, "sent": 0, "failed": 0, "skipped": 0, "replied": 0, "pending": 0}
    ]
    assert steps_sent(ledger) == {0: 5}
    # Other fields stay closed while sending.
    refused = await update(org, stopped, name="Renamed")
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_TRANSITION"]

    # Off and on again while paused: the delay counts from when it came back on, so steps
    # overdue by hours do not go out in a burst.
    resumed = await org.create(5, start=100, followUps=one_step, isAutopilot=True)
    await org.mutate("sendCampaignNow", resumed)
    clock.now = datetime.now(UTC)
    await dispatcher.tick()
    tenant = org.tenant()
    rows = await tenant.raw_find(Recipient, {"campaignId": ObjectId(resumed)}).to_list()
    hours_ago = [(r["_id"], {"sentAt": r["sentAt"] - timedelta(hours=3)}) for r in rows]
    await tenant.update_each(Recipient, hours_ago)  # as if sent three hours ago
    await org.mutate("pauseCampaign", resumed)
    assert (await update(org, resumed, isAutopilot=False))["userErrors"] == []
    assert (await update(org, resumed, isAutopilot=True))["userErrors"] == []
    await org.mutate("resumeCampaign", resumed)
    clock.now = datetime.now(UTC)
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 10}
    clock.advance(timedelta(minutes=61))
    await dispatcher.tick()
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 10, 1: 5}
    assert (await read(org, resumed))["status"] == "COMPLETED"


async def test_a_step_due_in_quiet_hours_waits_for_the_window(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    local = now.astimezone(ZoneInfo("America/New_York"))
    start = f"{local.hour:02d}:00"
    end = "24:00" if local.hour == 23 else f"{local.hour + 1:02d}:00"
    hours = OrganizationSettings(start, end, "America/New_York")
    org = Org(client)
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(now)
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock, defaults=hours))
    campaign_id = await org.create(
        3, followUps=[{"delayMinutes": 61, "message": "Again"}], isAutopilot=True
    )
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 3}
    clock.advance(timedelta(minutes=62))  # due, but the window has closed
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 3}
    opens = datetime.fromisoformat((await read(org, campaign_id))["nextSendAt"])
    assert opens - now > timedelta(hours=22)
    window = SendWindow(*_hours(start, end), "America/New_York")
    assert opens == window.next_opening(phone(0), clock.now)
    clock.now = opens
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 3, 1: 3}


def _hours(start: str, end: str) -> tuple[Any, Any]:
    opens, closes = parse_clock(start), parse_clock(end, end=True)
    assert opens is not None and closes is not None
    return opens, closes


class Timed(SimulatedProvider):
    """Notes when each message was accepted."""

    accepted: dict[str, datetime]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.accepted = {}

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        message_id = await super().send(to, body, key, organization=organization, sender=sender)
        self.accepted.setdefault(key, datetime.now(UTC))
        return message_id


async def test_a_reply_stored_first_always_stops_the_step(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Twenty replies race the step's send, each at a random moment: any step that went was
    handed to the provider before its contact's reply was stored, never after."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await org.create(
        20, followUps=[{"delayMinutes": 1, "message": "Again"}], isAutopilot=True
    )
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(datetime.now(UTC))
    provider = Timed(ledger, latency_s=0.02)
    dispatcher = Dispatcher(provider, replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=2))

    async def reply(i: int) -> None:
        await asyncio.sleep(random.uniform(0, 0.15))
        await text(hooked, frm=phone(i), to=NUMBER, body=f"reply {i}")

    await asyncio.gather(dispatcher.tick(), *(reply(i) for i in range(20)))
    await dispatcher.tick()
    to = {e["key"]: e["to"] for e in read_ledger(ledger)}
    went = {to[key]: at for key, at in provider.accepted.items() if ":" in key}
    stored = await org.tenant().raw_find(Message, {"direction": "inbound"}).to_list()
    assert len(stored) == 20
    for message in stored:
        handed = went.get(message["fromNumber"])
        if handed is not None:
            assert handed <= message["createdAt"].replace(tzinfo=UTC), "sent after the reply"
    outcomes = Counter(
        row["status"]
        for row in await org.tenant()
        .raw_find(StepSend, {"campaignId": ObjectId(campaign_id)})
        .to_list()
    )
    assert outcomes["sent"] == len(went)
    assert outcomes["sent"] + outcomes["stopped"] == 20
    assert (await org.campaign(campaign_id))["status"] == "completed"


async def test_follow_ups_are_the_organizations_own(client: httpx.AsyncClient) -> None:
    org, other = Org(client), Org(client)
    campaign_id = await org.create(2, followUps=CADENCE[:1], isAutopilot=True)
    body = await gql(client, READ, {"id": campaign_id}, other.headers)
    assert body["data"]["campaign"] is None
    refused = await gql(
        client, UPDATE, {"id": campaign_id, "input": {"followUps": []}}, other.headers
    )
    assert [e["code"] for e in refused["data"]["updateCampaign"]["userErrors"]] == ["NOT_FOUND"]
    answer = await client.get(f"/api/campaigns/{campaign_id}", headers=other.headers)
    assert answer.status_code == 404
    # The owner changes its steps while it is a draft, checked like creation's.
    changed = await update(
        org,
        campaign_id,
        followUps=[{"delayMinutes": 30, "message": "Hi"}, {"delayMinutes": 0, "message": "{{x}}"}],
    )
    assert {(tuple(e["field"]), e["code"]) for e in changed["userErrors"]} == {
        (("input", "followUps", "1", "delayMinutes"), "INVALID_DELAY"),
        (("input", "followUps", "1", "message"), "UNKNOWN_PLACEHOLDER"),
    }
    changed = await update(org, campaign_id, followUps=[{"delayMinutes": 30, "message": "Hi"}])
    assert changed == {
        "campaign": {"isAutopilot": True, "followUps": [{"delayMinutes": 30}]},
        "userErrors": [],
    }


async def test_carrier_reports_reach_steps_and_an_undelivered_step_ends_the_cadence(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    two_steps = [{"delayMinutes": 1, "message": "One"}, {"delayMinutes": 30, "message": "Two"}]
    campaign_id = await org.create(3, followUps=two_steps, isAutopilot=True)
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=2))
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 3, 1: 3}
    rows = await org.tenant().raw_find(StepSend, {"campaignId": ObjectId(campaign_id)}).to_list()
    first, second, third = sorted(rows, key=lambda row: row["_id"])

    async def report(row: dict[str, Any], status: str, sid: str | None = None) -> None:
        path = status_path(row["_id"], org.id)
        form = {
            "MessageSid": sid or row["providerMessageId"],
            "MessageStatus": status,
            "AccountSid": "AC" + "0" * 32,
        }
        answer = await hooked.post(path, data=form, headers=signed(path, form))
        assert answer.status_code == 204, answer.text

    await report(first, "undelivered")
    await report(first, "sent")  # late: never back
    await report(second, "delivered")
    await report(second, "failed", sid="SM" + "f" * 32)  # about another message: ignored
    # All at once, in any order: the highest wins however the updates race.
    await asyncio.gather(
        *(report(third, s) for s in ["queued", "sent", "delivered", "sent", "queued", "sending"])
    )
    states = {
        row["_id"]: row.get("deliveryStatus")
        for row in await org.tenant()
        .raw_find(StepSend, {"_id": {"$in": [first["_id"], second["_id"], third["_id"]]}})
        .to_list()
    }
    assert states == {
        first["_id"]: "undelivered",
        second["_id"]: "delivered",
        third["_id"]: "delivered",
    }
    # A step's carrier failure is counted once, as the step's.
    answer = await hooked.get(f"/api/campaigns/{campaign_id}/failures", headers=org.headers)
    assert [(f["stage"], f["step"], f["count"]) for f in answer.json()["data"]] == [
        ("delivery", 1, 1)
    ]

    clock.advance(timedelta(minutes=31))
    await dispatcher.tick()
    await dispatcher.tick()
    keys = ledger_keys(ledger)
    assert f"{first['recipientId']}:2" not in keys  # step 1 never arrived: no step 2 to it
    assert steps_sent(ledger) == {0: 3, 1: 3, 2: 2}
    assert (await org.campaign(campaign_id))["status"] == "completed"


async def test_a_reply_counts_from_the_last_step_sent(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The attribution window counts from the last message the contact got: a reply a week
    after the first message but a day after a follow-up is that follow-up's."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    campaign_id = await org.create(1, followUps=CADENCE[:1], isAutopilot=True)
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(SimulatedProvider(tmp_path / "l.jsonl"), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=61))
    await dispatcher.tick()
    tenant = org.tenant()
    [row] = await tenant.raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    [step] = await tenant.raw_find(StepSend, {"recipientId": row["_id"]}).to_list()
    await tenant.update_each(
        Recipient, [(row["_id"], {"sentAt": row["sentAt"] - timedelta(days=30)})]
    )
    await tenant.update_each(
        StepSend, [(step["_id"], {"sentAt": step["sentAt"] - timedelta(days=1)})]
    )
    await text(hooked, frm=phone(0), to=NUMBER, body="ok, call me")
    campaign = await read(org, campaign_id)
    assert campaign["stats"]["replied"] == 1, campaign
    assert campaign["followUpStats"][0]["replied"] == 1, campaign


@dataclass
class SlowSteps(SimulatedProvider):
    """Takes `delay_s` over each follow-up step (a slow provider), and notes when each
    message was accepted."""

    delay_s: float = 1.5
    accepted: dict[str, datetime] = field(default_factory=dict, init=False)

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        if ":" in key:
            await asyncio.sleep(self.delay_s)
        message_id = await super().send(to, body, key, organization=organization, sender=sender)
        self.accepted.setdefault(key, datetime.now(UTC))
        return message_id


async def _one_step_campaign(org: Org, dispatcher: Dispatcher, clock: Clock) -> str:
    campaign_id = await org.create(
        1, followUps=[{"delayMinutes": 1, "message": "Again"}], isAutopilot=True
    )
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=2))
    return campaign_id


async def _reply_when_claimed(org: Org, campaign_id: str) -> dict[str, Any]:
    """Replies once the step is claimed (its record exists); returns the stored reply."""
    tenant = org.tenant()
    for _ in range(300):
        if await tenant.raw_find(StepSend, {"campaignId": ObjectId(campaign_id)}).to_list():
            break
        await asyncio.sleep(0.01)
    await text(org.client, frm=phone(0), to=NUMBER, body="please stop")
    [stored] = await tenant.raw_find(Message, {"direction": "inbound"}).to_list()
    return stored


async def test_a_slow_or_retried_step_never_goes_after_the_reply_is_stored(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The reply comes while the step is claimed: a provider call under way is waited for,
    and no call (a retry after a transient error, say) starts after the reply."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    clock = Clock(datetime.now(UTC))
    slow = SlowSteps(tmp_path / "slow.jsonl")
    dispatcher = Dispatcher(slow, replace(FAST, clock=clock))
    campaign_id = await _one_step_campaign(org, dispatcher, clock)
    tick = asyncio.create_task(dispatcher.tick())
    stored = await _reply_when_claimed(org, campaign_id)
    await tick
    went = [at for key, at in slow.accepted.items() if key.endswith(":1")]
    assert not went or went[0] <= stored["createdAt"].replace(tzinfo=UTC), "sent after the reply"

    # A transient failure, then the reply during the backoff: the retry never happens.
    retried = Org(hooked)
    await own(hooked, retried, "+14155550111")
    flaky = SlowSteps(
        tmp_path / "flaky.jsonl", fail={phone(0): "transient:TWILIO_503:1"}, delay_s=0
    )
    clock.now = datetime.now(UTC)
    retry_config = replace(FAST, clock=clock, retry_initial_s=1.0, retry_max_s=1.0)
    dispatcher = Dispatcher(flaky, retry_config)
    campaign_id = await retried.create(
        1, followUps=[{"delayMinutes": 1, "message": "Again"}], isAutopilot=True
    )
    await retried.mutate("sendCampaignNow", campaign_id)
    flaky.fail.clear()  # the first message goes; only the step fails once
    await dispatcher.tick()
    flaky.fail[phone(0)] = "transient:TWILIO_503:1"
    clock.advance(timedelta(minutes=2))
    tick = asyncio.create_task(dispatcher.tick())
    tenant = retried.tenant()
    for _ in range(300):
        if flaky.attempts(phone(0)) >= 1:
            break
        await asyncio.sleep(0.01)
    await text(hooked, frm=phone(0), to="+14155550111", body="no")
    await tick
    assert not [key for key in ledger_keys(tmp_path / "flaky.jsonl") if key.endswith(":1")]
    [step] = await tenant.raw_find(StepSend, {"campaignId": ObjectId(campaign_id)}).to_list()
    assert step["status"] == "stopped"


async def test_a_step_a_dead_holder_claimed_is_not_resent_after_a_reply(
    hooked: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder died after claiming the step and starting its call; the contact replies; the
    next holder must not resend it (its key is new to the provider if the call never left)."""
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    clock = Clock(datetime.now(UTC))
    ledger = tmp_path / "ledger.jsonl"
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    campaign_id = await _one_step_campaign(org, dispatcher, clock)
    tenant = org.tenant()
    cid = ObjectId(campaign_id)
    [row] = await tenant.raw_find(Recipient, {"campaignId": cid}).to_list()
    held = await tenant.raw_find(BatchLease, {"campaignId": cid, "batch": 0}).to_list()
    epoch = 1 + max((int(r["epoch"]) for r in held if int(r.get("step") or 0) == 1), default=-1)
    dead = BatchLease(
        id=lease_id(cid, 0, epoch, 1),
        organizationId=tenant.organization_id,
        campaignId=cid,
        batch=0,
        epoch=epoch,
        step=1,
        owner="dead",
        expiresAt=clock.now - timedelta(seconds=1),
    )
    await tenant.insert(dead)
    step_id = f"{row['_id']}:1"
    record = {
        "_id": step_id,
        "campaignId": cid,
        "recipientId": row["_id"],
        "contactId": row["contactId"],
        "batch": 0,
        "step": 1,
        "status": "sending",
        "epoch": epoch,
        "deliveryRank": 0,
        "messageId": ObjectId(),
    }
    await tenant.raw_insert_many(StepSend, [record], ordered=True)
    # It had started its call (the call's handover is `go`, never `done`).
    await tenant.raw_insert_many(
        FollowUpHandover, [{"_id": f"{step_id}:0", "status": "go"}], ordered=True
    )
    # The reply waits for the call at most `STOP_WAIT_S` (12 s; the same wait at half a
    # second), then is stored though the call never ended: waited out, not for ever.
    monkeypatch.setattr(followups, "STOP_WAIT_S", 0.5)
    await asyncio.wait_for(text(hooked, frm=phone(0), to=NUMBER, body="no thanks"), 60)
    [call] = await tenant.raw_find(FollowUpHandover, {"_id": f"{step_id}:0"}).to_list()
    assert call["status"] == "go"
    [stored] = await tenant.raw_find(Message, {"direction": "inbound"}).to_list()
    assert stored["body"] == "no thanks"
    await dispatcher.tick()
    assert not [key for key in ledger_keys(ledger) if key.endswith(":1")]
    [step] = await tenant.raw_find(StepSend, {"_id": step_id}).to_list()
    assert step["status"] == "stopped"


async def test_one_recipient_waiting_does_not_hold_the_others_next_step(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """At 08:30 in New York the window (08:00-21:00) is open, in Los Angeles (05:30) it is
    not: the New York recipient gets its follow-up while the Los Angeles one still waits for
    its first message; the step is done for the batch only once both had theirs. (A message
    is sent at the dispatcher's clock's time, which moves past the step's delay between
    ticks.)"""
    morning = datetime(2030, 1, 7, 13, 30, tzinfo=UTC)
    hours = OrganizationSettings("08:00", "21:00", "America/New_York")
    org = Org(client)
    new_york, los_angeles = "+12125550142", "+13105550142"
    answer = await client.post(
        "/api/campaigns",
        json={
            "name": "Two coasts",
            "message": "Hi there",
            "newContacts": [{"phoneNumber": new_york}, {"phoneNumber": los_angeles}],
            "isAutopilot": True,
            "followUps": [{"delayMinutes": 1, "message": "Again"}],
        },
        headers=org.headers,
    )
    campaign_id = answer.json()["data"]["_id"]
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(morning)
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock, defaults=hours))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=2))
    await dispatcher.tick()
    went = [(entry["to"], ":" in entry["key"]) for entry in read_ledger(ledger)]
    assert went == [(new_york, False), (new_york, True)]
    campaign = await org.campaign(campaign_id)
    assert campaign["status"] == "sending"
    assert [(h["reason"], h["zone"]) for h in campaign["holds"]] == [
        ("quiet_hours", "America/Los_Angeles")
    ]
    # Los Angeles' window opens at 16:00 UTC: its first message, then its step.
    clock.now = datetime(2030, 1, 7, 16, tzinfo=UTC)
    await dispatcher.tick()
    clock.advance(timedelta(minutes=2))
    await dispatcher.tick()
    assert steps_sent(ledger) == {0: 2, 1: 2}
    assert (await org.campaign(campaign_id))["status"] == "completed"
