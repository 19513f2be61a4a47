"""Versioned migrations (services/storage/migrations.py): data of the previous layout is brought
up to date at start, an interrupted migration is finished by the next start, and two
processes starting at once run each migration once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import FastAPI

from core.config import Settings
from main import create_app
from models import Campaign, Contact, MigrationRecord, Tally
from models.base import utcnow
from models.campaign import CreatedBy
from services.storage import migrations
from services.storage.migrations import Migration
from tests.support import Clock, auth, create_campaign, gql, phones, token

CAMPAIGNS = """
query($after: String) { campaigns(first: 10, after: $after) {
  totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }
"""
LIST = """
query($after: String) { contacts(first: 100, after: $after) {
  totalCount edges { node { phoneNumber } } pageInfo { hasNextPage endCursor } } }
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
    await Tally.get_pymongo_collection().delete_many({})
    await MigrationRecord.get_pymongo_collection().delete_many({})

    restarted = create_app(settings)
    async with LifespanManager(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await create_campaign(http, org, name="New", newContacts=phones(3))
            listed: list[str] = []
            after = None
            while True:
                body = await gql(http, LIST, {"after": after}, headers=auth(token(org=org)))
                page = body["data"]["contacts"]
                assert page["totalCount"] == 153
                listed += [e["node"]["phoneNumber"] for e in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            names: list[str] = []
            after = None
            while True:
                body = await gql(http, CAMPAIGNS, {"after": after}, headers=auth(token(org=org)))
                page = body["data"]["campaigns"]
                assert page["totalCount"] == 26
                names += [e["node"]["name"] for e in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
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
