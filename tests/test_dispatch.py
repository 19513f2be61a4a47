"""Sending: campaigns go out once per recipient, coordinated only by the database.

Each test drives `services.sending.dispatcher.Dispatcher` against the real server,
on the database of a
started app (the app's own dispatcher is off in tests), through the simulated provider, whose
ledger is what a real gateway would have accepted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from models import BatchCounts, BatchLease, Campaign, Recipient, SendSlot
from models.base import utcnow
from services.sending.batches import write_counts
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.leases import RETRY_UNIT, Claim
from services.sending.providers import LogProvider, SimulatedProvider, read_ledger
from services.storage.tenancy import Tenant
from tests.support import (
    ANY_HOUR,
    FAST,
    Clock,
    Org,
    gql,
    ledger_keys,
    statuses,
    until_done,
)


async def test_a_campaign_goes_out_once_per_recipient(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org, other = Org(client), Org(client)
    campaign_id = await org.create(250, message="Hi {{firstName}}, a quick question")
    bystander = await other.create(30, start=5000)  # another organization's, not sent
    await org.mutate("sendCampaignNow", campaign_id)
    provider = SimulatedProvider(tmp_path / "ledger.jsonl")
    done = await until_done(org, campaign_id, Dispatcher(provider, FAST))

    assert done["status"] == "completed"
    assert done["stats"] == {
        "total": 250, "sent": 250, "failed": 0, "skipped": 0, "unknown": 0, "successRate": "100%",
        "replied": 0, "replyRate": "0%", "retried": 0,
    }  # fmt: skip
    keys = ledger_keys(tmp_path / "ledger.jsonl")
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    assert set(keys) == {str(r["_id"]) for r in rows} and set(keys.values()) == {1}
    entries = {e["to"]: e["body"] for e in read_ledger(tmp_path / "ledger.jsonl")}
    # the first message a contact gets from the organization carries the opt-out footer
    assert entries["+12122000007"] == "Hi P7, a quick question\nReply STOP to opt out"
    assert all(r["status"] == "sent" and r["providerMessageId"] for r in rows)
    assert (await other.campaign(bystander))["status"] == "draft"

    # The recipients answer by status over GraphQL, and the history names the dispatcher's moves.
    query = (
        f'{{ campaign(id: "{campaign_id}") {{ '
        "recipients(first: 3, status: SENT) { edges { node { status providerMessageId } } } "
        "history { action fromStatus toStatus by { id } } } }"
    )
    body = await gql(client, query, None, org.headers)
    edges = body["data"]["campaign"]["recipients"]["edges"]
    assert len(edges) == 3 and all(e["node"]["status"] == "SENT" for e in edges)
    moves = [(h["action"], h["toStatus"], h["by"]) for h in body["data"]["campaign"]["history"]]
    assert moves[-2:] == [
        ("send", "SENDING", {"id": str(org.user)}),
        ("complete", "COMPLETED", None),
    ]


async def test_a_due_scheduled_campaign_starts_and_a_future_one_waits(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    due = await org.create(3)
    later = await org.create(3, start=10)
    await org.client.post(
        f"/api/campaigns/{due}/schedule",
        json={"scheduleDate": (utcnow() + timedelta(seconds=1)).isoformat()},
        headers=org.headers,
    )
    await org.client.post(
        f"/api/campaigns/{later}/schedule",
        json={"scheduleDate": (utcnow() + timedelta(hours=1)).isoformat()},
        headers=org.headers,
    )
    assert (await org.campaign(due))["status"] == "scheduled"
    clock = Clock(utcnow() + timedelta(seconds=2))  # the first one's date has come
    dispatcher = Dispatcher(SimulatedProvider(tmp_path / "l.jsonl"), replace(FAST, clock=clock))
    done = await until_done(org, due, dispatcher)
    assert done["status"] == "completed" and done["stats"]["sent"] == 3
    assert (await org.campaign(later))["status"] == "scheduled"
    assert len(read_ledger(tmp_path / "l.jsonl")) == 3


async def test_opted_out_since_creation_is_skipped_and_failures_are_recorded(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    campaign_id = await org.create(12)
    contacts = (
        await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    )
    first_contact = str(sorted(contacts, key=lambda r: r["seq"])[0]["contactId"])
    query = (
        f'mutation {{ optOutContact(id: "{first_contact}", reason: "STOP") '
        "{ userErrors { code } } }"
    )
    assert (await gql(client, query, None, org.headers))["data"]["optOutContact"][
        "userErrors"
    ] == []
    provider = SimulatedProvider(
        tmp_path / "l.jsonl",
        fail={
            "+12122000001": "permanent:INVALID_NUMBER",  # never retried
            "+12122000002": "transient:RATE_LIMITED:2",  # third try goes through
            "+12122000003": "transient:TIMEOUT:99",  # retries run out
        },
    )
    await org.mutate("sendCampaignNow", campaign_id)
    done = await until_done(org, campaign_id, Dispatcher(provider, FAST))
    assert done["stats"] == {
        "total": 12, "sent": 9, "failed": 2, "skipped": 1, "unknown": 0, "successRate": "82%",
        "replied": 0, "replyRate": "0%", "retried": 0,
    }  # fmt: skip
    sent_to = {e["to"] for e in read_ledger(tmp_path / "l.jsonl")}
    assert "+12122000000" not in sent_to and "+12122000002" in sent_to
    assert provider.attempts("+12122000001") == 1  # permanent: one try
    assert provider.attempts("+12122000003") == FAST.send_attempts
    rows = {
        r["seq"]: r
        for r in await org.tenant()
        .raw_find(Recipient, {"campaignId": ObjectId(campaign_id)})
        .to_list()
    }
    assert (rows[0]["status"], rows[0]["errorCode"]) == ("skipped", "OPTED_OUT")
    assert (rows[1]["status"], rows[1]["errorCode"]) == ("failed", "INVALID_NUMBER")
    assert (rows[3]["status"], rows[3]["errorCode"]) == ("failed", "TIMEOUT")


class PausingProvider(SimulatedProvider):
    """Pauses (or cancels) the campaign through the API while its first message is in flight."""

    action: str = "pauseCampaign"
    org: Org | None = None
    campaign_id: str = ""
    fired: bool = False
    accepted_by_then: int = -1
    """Messages the provider had accepted when the pause (or cancel) was committed."""

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        if not self.fired and self.org is not None:
            self.fired = True
            await self.org.mutate(self.action, self.campaign_id)
            self.accepted_by_then = len(read_ledger(self.ledger))
        return await super().send(to, body, key, organization=organization, sender=sender)


@pytest.mark.parametrize("action", ["pauseCampaign", "cancelCampaign"])
async def test_pause_and_cancel_take_effect_within_a_batch(
    client: httpx.AsyncClient, tmp_path: Path, action: str
) -> None:
    org = Org(client)
    campaign_id = await org.create(150)
    provider = PausingProvider(tmp_path / "l.jsonl")
    provider.action, provider.org, provider.campaign_id = action, org, campaign_id
    config = DispatchConfig(lease_seconds=5, chunk=10, max_in_flight=10, defaults=ANY_HOUR)
    dispatcher = Dispatcher(provider, config)
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    stopped = await org.campaign(campaign_id)
    sent = len(read_ledger(tmp_path / "l.jsonl"))
    assert stopped["status"] == ("paused" if action == "pauseCampaign" else "cancelled")
    # Once the pause was committed, the chunk in flight in each batch being sent (the two
    # batches of 150 go at once) finished, and nothing after it.
    assert 0 <= provider.accepted_by_then < sent <= provider.accepted_by_then + 2 * config.chunk
    assert sent < 150
    assert stopped["stats"]["sent"] == sent
    assert await statuses(org, campaign_id) == Counter({"pending": 150 - sent, "sent": sent})
    for _ in range(3):  # nothing more goes out while it is stopped
        await dispatcher.tick()
    assert len(read_ledger(tmp_path / "l.jsonl")) == sent
    if action == "cancelCampaign":
        return
    await org.mutate("resumeCampaign", campaign_id)
    done = await until_done(org, campaign_id, dispatcher)
    assert done["status"] == "completed" and done["stats"]["sent"] == 150
    assert set(ledger_keys(tmp_path / "l.jsonl").values()) == {1}
    assert len(read_ledger(tmp_path / "l.jsonl")) == 150


class OptingOutProvider(SimulatedProvider):
    """Opts a contact out through the API while the campaign's first message is in flight."""

    org: Org | None = None
    contact_id: str = ""
    fired: bool = False

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        if not self.fired and self.org is not None:
            self.fired = True
            query = (
                f'mutation {{ optOutContact(id: "{self.contact_id}") {{ userErrors {{ code }} }} }}'
            )
            answer = await gql(self.org.client, query, None, self.org.headers)
            assert answer["data"]["optOutContact"]["userErrors"] == []
        return await super().send(to, body, key, organization=organization, sender=sender)


async def test_a_contact_opted_out_mid_send_is_skipped(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The opt-out lands while the first batch is going out; the contact is in the second."""
    org = Org(client)
    campaign_id = await org.create(150)
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    later = next(row for row in rows if row["seq"] == 120)
    provider = OptingOutProvider(tmp_path / "l.jsonl")
    provider.org, provider.contact_id = org, str(later["contactId"])
    config = DispatchConfig(lease_seconds=5, chunk=10, parallel_batches=1, defaults=ANY_HOUR)
    await org.mutate("sendCampaignNow", campaign_id)
    done = await until_done(org, campaign_id, Dispatcher(provider, config))
    assert provider.fired
    assert (done["stats"]["sent"], done["stats"]["skipped"]) == (149, 1)
    assert "+12122000120" not in {entry["to"] for entry in read_ledger(tmp_path / "l.jsonl")}
    stored = await org.tenant().raw_find(Recipient, {"_id": later["_id"]}).to_list()
    assert (stored[0]["status"], stored[0]["errorCode"]) == ("skipped", "OPTED_OUT")


async def plant_dead_sender(
    org: Org, campaign_id: str, provider_send: Any, handed_over: int
) -> None:
    """What a sender that died mid-batch leaves: a lease (expired), its batch marked `sending`,
    and some messages accepted by the provider but not recorded."""
    tenant = org.tenant()
    cid = ObjectId(campaign_id)
    await tenant.insert(
        BatchLease(id=f"{cid}:0:0", organizationId=tenant.organization_id, campaignId=cid, batch=0,
                   epoch=0, owner="dead", expiresAt=utcnow() - timedelta(seconds=1))
    )  # fmt: skip
    await tenant.update_many(
        Recipient, {"campaignId": cid, "batch": 0}, {"$set": {"status": "sending", "leaseEpoch": 0}}
    )
    rows = sorted(
        await tenant.raw_find(Recipient, {"campaignId": cid}).to_list(), key=lambda r: r["seq"]
    )
    for row in rows[:handed_over]:
        phone = f"+1212{2000000 + row['seq']:07d}"
        await provider_send(phone, "Hi", str(row["_id"]), organization=tenant.organization_id)


async def test_a_dead_senders_batch_is_taken_over_without_sending_twice(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    campaign_id = await org.create(120)
    await org.mutate("sendCampaignNow", campaign_id)
    provider = SimulatedProvider(tmp_path / "l.jsonl")
    await plant_dead_sender(org, campaign_id, provider.send, handed_over=37)
    assert len(read_ledger(tmp_path / "l.jsonl")) == 37
    survivor = Dispatcher(provider, FAST)
    done = await until_done(org, campaign_id, survivor)
    assert survivor.takeovers == 1
    keys = ledger_keys(tmp_path / "l.jsonl")
    assert len(keys) == 120 and set(keys.values()) == {1}  # the 37 were not sent again
    assert done["stats"]["sent"] == 120 and done["stats"]["unknown"] == 0


async def test_without_idempotency_a_dead_senders_messages_are_unknown_not_resent(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    org = Org(client)
    campaign_id = await org.create(120)
    await org.mutate("sendCampaignNow", campaign_id)

    async def nothing(*_: object) -> None:
        return None

    await plant_dead_sender(org, campaign_id, nothing, handed_over=0)
    done = await until_done(org, campaign_id, Dispatcher(LogProvider(), FAST))
    # Batch 0 (100 recipients) was in the dead sender's hands; batch 1 went out normally.
    assert done["stats"]["unknown"] == 100 and done["stats"]["sent"] == 20
    assert await statuses(org, campaign_id) == Counter({"unknown": 100, "sent": 20})
    query = (
        f'{{ campaign(id: "{campaign_id}") {{ '
        "recipients(first: 5, status: UNKNOWN) { edges { node { status error } } } } }"
    )
    edges = (await gql(client, query, None, org.headers))["data"]["campaign"]["recipients"]["edges"]
    assert len(edges) == 5 and all(e["node"]["status"] == "UNKNOWN" for e in edges)


async def test_concurrent_claimers_never_hold_one_batch_twice(client: httpx.AsyncClient) -> None:
    """5 claimers race for each of 100 batches, then again once every lease expired: exactly
    one holder per batch and epoch, on the server the tests run on."""
    org = Org(client)
    tenant = org.tenant()
    cid = ObjectId()
    clock = Clock(utcnow())
    claimers = [
        Dispatcher(
            LogProvider(),
            DispatchConfig(lease_seconds=30, owner=f"c{i}", defaults=ANY_HOUR, clock=clock),
        )
        for i in range(5)
    ]
    batches = 100

    async def race(batch: int) -> list[int]:
        got = await asyncio.gather(*(c.claim(tenant, cid, batch) for c in claimers))
        return [claim.epoch for claim in got if claim is not None]

    async def round_(expected_epoch: int) -> None:
        gate = asyncio.Semaphore(10)

        async def one(batch: int) -> list[int]:
            async with gate:
                return await race(batch)

        results = await asyncio.gather(*(one(b) for b in range(batches)))
        assert all(r == [expected_epoch] for r in results), [
            r for r in results if r != [expected_epoch]
        ][:5]

    await round_(0)
    assert sum(c.claimed for c in claimers) == batches
    clock.advance(timedelta(seconds=31))  # every lease expires
    await round_(1)
    assert sum(c.takeovers for c in claimers) == batches
    leases = await tenant.raw_find(BatchLease, {"campaignId": cid}).to_list()
    assert Counter((row["batch"], row["epoch"]) for row in leases) == Counter(
        {(b, e): 1 for b in range(batches) for e in (0, 1)}
    )


async def test_two_dispatchers_split_a_campaign_and_send_each_message_once(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Five batches: more than one dispatcher takes at once (`parallel_batches`), so each gets
    some."""
    org = Org(client)
    assert FAST.parallel_batches < 5
    campaign_id = await org.create(500)
    await org.mutate("sendCampaignNow", campaign_id)
    ledger = tmp_path / "l.jsonl"
    first = Dispatcher(SimulatedProvider(ledger, latency_s=0.001), FAST)
    second = Dispatcher(SimulatedProvider(ledger, latency_s=0.001), FAST)
    done = await until_done(org, campaign_id, first, second)
    keys = ledger_keys(ledger)
    assert len(keys) == 500 and set(keys.values()) == {1}
    assert first.claimed > 0 and second.claimed > 0, (first.claimed, second.claimed)
    # Each of the 5 batches was claimed fresh once; a busy machine may let a lease lapse and
    # the other dispatcher take the batch over (safely: the ledger above holds each key once).
    fresh = first.claimed + second.claimed - first.takeovers - second.takeovers
    assert fresh == 5, (first.claimed, second.claimed, first.takeovers, second.takeovers)
    assert done["status"] == "completed" and done["stats"]["sent"] == 500
    stored = await org.tenant().get(Campaign, campaign_id)
    assert stored is not None and stored.stats.sent == 500  # folded into the campaign


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus' text format (0 when absent)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_what_was_sent(client: httpx.AsyncClient, tmp_path: Path) -> None:
    async def scrape() -> str:
        answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        return answer.text

    sent_label = 'outcome="sent",provider="simulated"'
    before = await scrape()
    org = Org(client)
    campaign_id = await org.create(130)
    await org.mutate("sendCampaignNow", campaign_id)
    await until_done(org, campaign_id, Dispatcher(SimulatedProvider(tmp_path / "l.jsonl"), FAST))
    after = await scrape()
    assert (
        metric(after, "campaign_messages_total", sent_label)
        - metric(before, "campaign_messages_total", sent_label)
        == 130
    )
    claimed = "campaign_batches_claimed_total"
    assert metric(after, claimed) - metric(before, claimed) == 2
    count = "campaign_send_seconds_count"
    assert (
        metric(after, count, 'provider="simulated"') - metric(before, count, 'provider="simulated"')
        == 130
    )


async def test_the_rate_limit_holds_across_dispatchers(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """10 messages a second for the organization, shared by two dispatchers on one clock the
    test moves a second at a time: each second gets exactly 10, as the slots say too."""
    org = Org(client)
    campaign_id = await org.create(60)
    await org.mutate("sendCampaignNow", campaign_id)
    clock = Clock(utcnow())
    config = DispatchConfig(
        lease_seconds=30, chunk=5, rate_per_second=10, defaults=ANY_HOUR, clock=clock
    )
    ledger = tmp_path / "l.jsonl"
    # Slots of an hour ago, this organization's and another's: the dispatcher clears its own.
    hour_ago = int(clock.now.timestamp()) - 3600
    other = Tenant.for_organization(ObjectId())
    for tenant in (org.tenant(), other):
        await tenant.insert(
            SendSlot(
                id=f"{tenant.organization_id}:{hour_ago}:0",
                organizationId=tenant.organization_id,
                second=hour_ago,
                slot=0,
            )
        )
    dispatchers = [
        Dispatcher(SimulatedProvider(ledger), replace(config, owner=f"d{i}")) for i in range(2)
    ]
    per_second: list[int] = []
    seen: list[int] = []
    for _ in range(10):
        before = len(read_ledger(ledger))
        await asyncio.gather(*(d.tick() for d in dispatchers))
        per_second.append(len(read_ledger(ledger)) - before)
        campaign = await org.campaign(campaign_id)
        seen.append(campaign["stats"]["sent"])
        if campaign["status"] == "completed":
            break
        clock.now += timedelta(seconds=1)
    assert per_second == [10] * 6, per_second
    # The stats moved with every second (written after every chunk), forwards.
    assert seen == [10, 20, 30, 40, 50, 60]
    assert set(ledger_keys(ledger).values()) == {1}
    assert await other.raw_find(SendSlot, {}).to_list() != []  # not this dispatcher's to clear
    slots = await org.tenant().raw_find(SendSlot, {}).to_list()
    per_second_slots = Counter[int]()
    for row in slots:
        per_second_slots[row["second"]] += row["size"]
    # Two chunks of 5 in each of 6 seconds (the second one with the unit kept for reps).
    assert per_second_slots == Counter({int(clock.now.timestamp()) - s: 10 for s in range(6)})


async def test_a_fenced_holder_never_overwrites_a_newer_holders_counts(
    client: httpx.AsyncClient,
) -> None:
    """Counts are written after a holder's last chunk, when it may already be fenced out: only
    a newer `(unit, epoch)` than the one stored may write them. A retry round's epochs start at
    0 again, and it still comes after every epoch of the first message."""
    tenant = Tenant.for_organization(ObjectId())
    campaign = ObjectId()
    counts_id = f"{campaign}:0"

    async def write(step: int, epoch: int, sent: int) -> bool:
        claim = Claim(tenant, campaign, 0, epoch, takeover=False, step=step)
        fields = {"sent": sent}
        return await write_counts(claim, counts_id, fields, {"campaignId": campaign, "batch": 0})

    async def stored() -> dict[str, Any]:
        rows = await tenant.raw_find(BatchCounts, {"_id": counts_id}).to_list()
        return {key: rows[0][key] for key in ("unit", "epoch", "sent")}

    assert await write(0, 2, sent=5)
    assert not await write(0, 1, sent=3)  # fenced out by epoch 2
    assert await stored() == {"unit": 0, "epoch": 2, "sent": 5}
    assert await write(0, 5, sent=7)
    assert await write(RETRY_UNIT, 0, sent=9)  # retry round 0 after step-0 epoch 5
    assert await stored() == {"unit": RETRY_UNIT, "epoch": 0, "sent": 9}
    assert not await write(0, 6, sent=1)  # the first message's unit never comes back over it
    assert await stored() == {"unit": RETRY_UNIT, "epoch": 0, "sent": 9}
