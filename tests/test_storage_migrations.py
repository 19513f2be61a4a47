"""Versioned migrations (services/storage/migrations.py): data of the previous layout is brought
up to date at start, an interrupted migration is finished by the next start, and two
processes starting at once run each migration once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import FastAPI

from core.config import Settings
from main import create_app
from models import Campaign, CampaignSlot, Contact, MigrationRecord, Recipient
from models.base import utcnow
from models.campaign import CreatedBy
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from services.storage import migrations
from services.storage.migrations import Migration
from tests.support import (
    FAST,
    Clock,
    CommandLog,
    Org,
    auth,
    create_campaign,
    gql,
    ledger_keys,
    pages,
    phones,
    started_again,
    token,
    until_done,
)

CAMPAIGNS = """
query($after: String) { campaigns(first: 10, after: $after) {
  totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }
"""
LIST = """
query($after: String) { contacts(first: 100, after: $after) {
  totalCount edges { node { phoneNumber } } pageInfo { hasNextPage endCursor } } }
"""

RECIPIENTS = """
query($id: ID!, $after: String) { campaign(id: $id) {
  stats { total } recipients(first: 40, after: $after) {
    totalCount edges { node { contactId } } pageInfo { hasNextPage endCursor } } } }
"""


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


async def test_contacts_of_the_previous_layout_list_and_count_after_a_start(
    app: FastAPI, settings: Settings
) -> None:
    org = ObjectId()
    # What an older version stored: contacts without a list page, and no running totals.
    now = utcnow()
    old = [
        {
            "_id": ObjectId(),
            "organizationId": org,
            "phoneNumber": f"+1415555{2000 + i:04d}",
            "firstName": "Old",
            "tags": [],
            "optedOut": False,
            "version": 0,
            "createdAt": now,
            "updatedAt": now,
        }
        for i in range(150)
    ]
    await Contact.get_pymongo_collection().insert_many(old)
    created = utcnow() - timedelta(days=1)
    older_campaigns = []
    for i in range(25):  # older than the one created above, one a minute
        campaign = Campaign(
            id=PydanticObjectId(),
            organizationId=PydanticObjectId(org),
            name=f"Old {i}",
            message="Hi",
            createdBy=CreatedBy(id=PydanticObjectId(), fullName="Rep"),
            createdAt=created + timedelta(minutes=i),
        )
        doc = campaign.model_dump(by_alias=True)
        del doc["page"]
        older_campaigns.append(doc)
    await Campaign.get_pymongo_collection().insert_many(older_campaigns)

    async with started_again(settings) as http:
        await create_campaign(http, org, name="New", newContacts=phones(3))
        headers = auth(token(org=org))
        contact_pages = await pages(http, LIST, ["contacts"], headers)
        assert {p["totalCount"] for p in contact_pages} == {153}
        listed = [e["node"]["phoneNumber"] for p in contact_pages for e in p["edges"]]
        campaign_pages = await pages(http, CAMPAIGNS, ["campaigns"], headers)
        assert {p["totalCount"] for p in campaign_pages} == {26}
        names = [e["node"]["name"] for p in campaign_pages for e in p["edges"]]
        assert names == ["New"] + [f"Old {i}" for i in reversed(range(25))], names
        assert await Contact.find({"organizationId": org, "page": None}).count() == 0
        done = await MigrationRecord.find({"_id": {"$regex": ":done$"}}).to_list()
    assert len(listed) == len(set(listed)) == 153
    assert {d.version for d in done} == {m.version for m in migrations.all_migrations()}


async def _steps_migration(
    done: list[int], *, crash_after: int | None = None, runs: list[int] | None = None
) -> Migration:
    """A migration of 10 steps, each idempotent (a set), that may die after some."""

    async def run() -> None:
        if runs is not None:
            runs.append(1)
        for step in range(10):
            if step not in done:
                await asyncio.sleep(0.01)
                done.append(step)
            if crash_after is not None and len(done) == crash_after:
                raise Crash

    return Migration(101, "ten steps", run)


async def test_an_interrupted_migration_is_finished_by_the_next_start(app: FastAPI) -> None:
    clock = Clock(datetime.now(UTC))
    done: list[int] = []
    crashing = await _steps_migration(done, crash_after=5)
    with pytest.raises(Crash):
        await migrations.migrate([crashing], clock=clock)
    assert done == [0, 1, 2, 3, 4]
    assert await MigrationRecord.find_one({"_id": "101:done"}) is None

    resumed = await _steps_migration(done)
    # While the dead attempt's lease holds, a start waits rather than run it twice...
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(migrations.migrate([resumed], clock=clock, poll_seconds=0.01), 0.3)
    # ...and once it ran out, the next start takes over and finishes.
    clock.advance(migrations.LEASE + timedelta(seconds=1))
    assert await migrations.migrate([resumed], clock=clock) == [101]
    assert sorted(done) == list(range(10)) and len(done) == 10
    attempts = await MigrationRecord.find({"version": 101}).to_list()
    assert sorted(a.id or "" for a in attempts) == ["101:1", "101:2", "101:done"]
    assert await migrations.migrate([resumed], clock=clock) == []  # recorded: not run again


async def test_a_migration_that_fails_is_retried_at_once(app: FastAPI) -> None:
    done: list[int] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        done.append(1)

    migration = Migration(102, "flaky", flaky)
    with pytest.raises(RuntimeError):
        await migrations.migrate([migration])
    assert await migrations.migrate([migration]) == [102]  # no wait for the lease
    assert done == [1]


async def test_two_processes_starting_at_once_run_a_migration_once(app: FastAPI) -> None:
    done: list[int] = []
    runs: list[int] = []
    migration = await _steps_migration(done, runs=runs)
    first, second = await asyncio.gather(
        migrations.migrate([migration], poll_seconds=0.01),
        migrations.migrate([migration], poll_seconds=0.01),
    )
    assert sorted([first, second]) == [[], [101]]
    assert runs == [1] and done == list(range(10))


Rows = list[dict[str, Any]]


def _before_seq(org: ObjectId, rep: ObjectId, count: int) -> tuple[dict[str, Any], Rows, Rows]:
    """A campaign, its contacts and its recipients as stored before recipients were numbered
    and changes versioned (the layout before `seq`): no `seq`, `batch`, `head` or
    `contactPage` on recipients, no `nextSeq` or `version` on the campaign, no `version` or
    list page on the contacts."""
    now = utcnow() - timedelta(days=3)
    contacts: Rows = [
        {
            "_id": ObjectId(),
            "organizationId": org,
            "firstName": f"Old{i}",
            "lastName": "",
            "phoneNumber": f"+1415555{3000 + i:04d}",
            "email": None,
            "contactStatus": "New Lead",
            "process": None,
            "tags": [],
            "assignedTo": None,
            "optedOut": False,
            "createdAt": now,
            "updatedAt": now,
        }
        for i in range(count)
    ]
    campaign: dict[str, Any] = {
        "_id": ObjectId(),
        "organizationId": org,
        "name": "Before seq",
        "message": "Hi {{firstName}}",
        "type": "sms",
        "status": "draft",
        "scheduleDate": None,
        "process": None,
        "contactStatus": None,
        "isAutopilot": False,
        "segmentation": None,
        "assignment": None,
        "createdBy": {"_id": rep, "fullName": "Rep"},
        "failedUserIds": [],
        "failedDetails": [],
        "stats": {"total": count, "sent": 0, "failed": 0, "skipped": 0},
        "messageStats": {"encoding": "GSM-7", "segments": 1, "characters": 12},
        "createdAt": now,
        "updatedAt": now,
    }
    # Recipients were inserted in order, so their ids grow with it; shuffled on disk.
    recipients: Rows = [
        {
            "_id": ObjectId(),
            "organizationId": org,
            "campaignId": campaign["_id"],
            "contactId": contact["_id"],
            "status": "pending",
            "assignedTo": None,
            "providerMessageId": None,
            "error": None,
            "attempts": 0,
            "sentAt": None,
            "createdAt": now,
            "updatedAt": now,
        }
        for contact in contacts
    ]
    return campaign, contacts, recipients


async def test_recipients_stored_before_seq_list_send_and_count_after_a_start(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    org, rep = ObjectId(), ObjectId()
    campaign, contacts, recipients = _before_seq(org, rep, 130)
    await Contact.get_pymongo_collection().insert_many(list(contacts))
    await Campaign.get_pymongo_collection().insert_one(campaign)
    # The order on disk is not the order they were added.
    await Recipient.get_pymongo_collection().insert_many(list(reversed(recipients)))
    # An earlier attempt died after numbering the first 40: the next goes on after them.
    first = recipients[:40]
    for seq, row in enumerate(first):
        await Recipient.get_pymongo_collection().update_one(
            {"_id": row["_id"]}, {"$set": {"seq": seq, "batch": seq // 100, "head": seq < 21}}
        )
    added_order = [str(c["_id"]) for c in contacts]

    async with started_again(settings) as http:
        owner = Org(http)
        owner.id, owner.user = org, rep
        owner.headers = auth(token(org=org, user=rep))
        campaign_id = str(campaign["_id"])
        # Listed in the order they were added, page after page, and counted.
        listed: list[str] = []
        after = None
        while True:
            variables = {"id": campaign_id, "after": after}
            body = await gql(http, RECIPIENTS, variables, headers=owner.headers)
            assert "errors" not in body, body
            found = body["data"]["campaign"]
            assert found["stats"]["total"] == 130
            page = found["recipients"]
            assert page["totalCount"] == 130
            listed += [e["node"]["contactId"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert listed == added_order
        legacy = await http.get(
            f"/api/campaigns/{campaign_id}/recipients?page=2&limit=100", headers=owner.headers
        )
        assert legacy.status_code == 200, legacy.text
        assert len(legacy.json()["data"]) == 30
        # A change claims the next version of the campaign and of a contact...
        renamed = await http.patch(
            f"/api/campaigns/{campaign_id}", json={"name": "Renamed"}, headers=owner.headers
        )
        assert renamed.status_code == 200, renamed.text
        edited = await http.patch(
            f"/api/contacts/{contacts[0]['_id']}",
            json={"firstName": "New"},
            headers=owner.headers,
        )
        assert edited.status_code == 200, edited.text
        # ...and the campaign goes out once per recipient.
        await owner.mutate("sendCampaignNow", campaign_id)
        provider = SimulatedProvider(tmp_path / "ledger.jsonl")
        done = await until_done(owner, campaign_id, Dispatcher(provider, FAST))
        assert done["status"] == "completed"
        assert (done["stats"]["total"], done["stats"]["sent"]) == (130, 130)
        keys = ledger_keys(tmp_path / "ledger.jsonl")
        assert set(keys) == {str(r["_id"]) for r in recipients} and set(keys.values()) == {1}
        rows = await Recipient.find({"campaignId": campaign["_id"]}).to_list()
        assert sorted(r.seq for r in rows) == list(range(130))
        by_id = {r.id: r for r in rows}
        assert [by_id[r["_id"]].seq for r in first] == list(range(40))  # kept, not renumbered
        stored_campaign = await Campaign.find_one({"_id": campaign["_id"]})
        assert stored_campaign is not None and stored_campaign.nextSeq == 130
        pages = {c.id: c.page for c in await Contact.find({"organizationId": org}).to_list()}
        # The dispatcher reads a batch's contacts by their pages.
        assert None not in pages.values()
        assert all(r.contactPage == pages[r.contactId] for r in rows if r.seq >= 40)


async def test_campaigns_stored_before_list_numbers_list_by_number_after_a_start(
    app: FastAPI, settings: Settings
) -> None:
    """Campaigns of the layout before list numbers (a list `page` from page claims, no
    `listSeq`) are numbered in creation order at start, after what an interrupted attempt
    numbered (the numbers it claimed without using them become gaps): the numbered REST list
    and the GraphQL list show them newest first, and a deletion after the start is a gap."""
    org = ObjectId()
    created = utcnow() - timedelta(days=2)
    docs = []
    for i in range(45):  # one a minute; their old pages in the opposite order, as a race left
        campaign = Campaign(
            id=PydanticObjectId(),
            organizationId=PydanticObjectId(org),
            name=f"Old {i}",
            message="Hi",
            createdBy=CreatedBy(id=PydanticObjectId(), fullName="Rep"),
            createdAt=created + timedelta(minutes=i),
            page=(44 - i) // 20,
        )
        doc = campaign.model_dump(by_alias=True)
        del doc["listSeq"]
        docs.append(doc)
    # An attempt that died: it claimed numbers 0-6 and gave 2-6 to the five oldest.
    for n, doc in enumerate(docs[:5], start=2):
        doc["listSeq"], doc["page"] = n, n // 20
    await Campaign.get_pymongo_collection().insert_many(list(reversed(docs)))
    await CampaignSlot.get_pymongo_collection().insert_many(
        [{"_id": f"{org}:{n}", "organizationId": org, "seq": n} for n in range(7)]
    )

    async with started_again(settings) as http:
        headers = auth(token(org=org))
        await create_campaign(http, org, name="New", newContacts=phones(1))
        expected = ["New"] + [f"Old {i}" for i in reversed(range(45))]

        async def numbered(limit: int) -> list[str]:
            names: list[str] = []
            for page in range(1, 100):
                answer = await http.get(
                    f"/api/campaigns?page={page}&limit={limit}", headers=headers
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["pagination"]["total"] == len(expected)
                if not answer.json()["data"]:
                    return names
                names += [c["name"] for c in answer.json()["data"]]
            raise AssertionError("too many pages")

        assert await numbered(20) == expected
        assert await numbered(7) == expected
        body = await gql(http, CAMPAIGNS, {}, headers=headers)
        assert [e["node"]["name"] for e in body["data"]["campaigns"]["edges"]] == expected[:10]
        victim = docs[30]["_id"]
        query = f'mutation {{ deleteCampaign(id: "{victim}") {{ deletedId }} }}'
        assert "errors" not in await gql(http, query, headers=headers)
        expected.remove("Old 30")
        assert await numbered(6) == expected
        stored = await Campaign.find({"organizationId": org}).to_list()
    assert all(c.listSeq is not None and c.page == c.listSeq // 20 for c in stored)
    assert sorted(c.listSeq for c in stored if c.listSeq is not None)[:6] == [2, 3, 4, 5, 6, 7]


RETIRED_KEYS: dict[str, list[tuple[str, int]]] = {
    "campaigns.org_status_schedule": [("organizationId", 1), ("status", 1), ("scheduleDate", 1)],
    "campaigns.org_status_created_id": [
        ("organizationId", 1),
        ("status", 1),
        ("createdAt", -1),
        ("_id", -1),
    ],
    "contacts.org_status": [("organizationId", 1), ("contactStatus", 1)],
    "contact_sends.org_contact": [("organizationId", 1), ("contactId", 1)],
    "messages.org_status": [("organizationId", 1), ("status", 1)],
    "recipients.org_campaign_seq": [("organizationId", 1), ("campaignId", 1), ("seq", 1)],
    "replies.org_campaign": [("organizationId", 1), ("campaignId", 1)],
}
"""The retired indexes as an earlier version declared them."""


async def test_indexes_no_query_uses_are_dropped_at_start(app: FastAPI, settings: Settings) -> None:
    """A database an earlier version set up still has the indexes no query needs any more,
    which every write paid for: the start drops them and keeps every declared one; a start
    that runs the migration again finds nothing to drop."""
    retired = migrations.RETIRED_INDEXES
    assert {
        f"{model.Settings.name}.{name}" for model, retiring in retired.items() for name in retiring
    } == set(RETIRED_KEYS)
    for model, retiring in retired.items():
        for name in retiring:
            keys = RETIRED_KEYS[f"{model.Settings.name}.{name}"]
            await model.get_pymongo_collection().create_index(keys, name=name)

    async def names() -> dict[str, set[str]]:
        # the started app's client: each start binds the models to its own
        found = {}
        for model in retired:
            collection = model.get_pymongo_collection()
            found[model.Settings.name] = {i["name"] async for i in await collection.list_indexes()}
        return found

    declared = {
        model.Settings.name: {i.document["name"] for i in model.Settings.indexes} | {"_id_"}
        for model in retired
    }
    assert await names() == {
        model.Settings.name: declared[model.Settings.name] | set(retiring)
        for model, retiring in retired.items()
    }
    async with started_again(settings):
        assert await names() == declared
        await MigrationRecord.get_pymongo_collection().delete_many({"version": 8})
    log = CommandLog()
    log.counting = True
    async with LifespanManager(create_app(settings, event_listeners=[log])):
        assert await names() == declared
        assert await MigrationRecord.find_one({"_id": "8:done"}) is not None
    assert "dropIndexes" not in log.names
