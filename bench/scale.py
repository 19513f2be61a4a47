"""Point lookups and creation on a database that already holds a CRM's worth of data.

For each size (default 20,000 and 200,000 contacts) a fresh database is loaded with bulk writes:
five organizations, four small ones of 2,500 contacts each (`--small-orgs`) and one large one
holding the rest,
and 500 campaigns of 100 recipients each (400 of them the large organization's). Then, as a
small organization and as the large one, interleaved sample by sample, it times:

- `contact(id)` over GraphQL, and its floor: PyMongo `find_one({_id, organizationId})`;
- `POST /api/campaigns` with 3 existing contact ids, and its floor: the 3 raw lookups plus
  inserting 3 recipients and the campaign;
- `POST /api/campaigns` with 1,000 new contacts, and its floor: `insert_many` of the same
  number of contacts and recipients plus the campaign, into the same loaded collections;
- a dashboard's first screen over GraphQL (20 campaigns, each with its creator and 5
  recipients with their contacts), and its floor: the same three finds in raw PyMongo;
- `contacts(first: 20)`, and `contacts(search:)` with a phone typed as `(555) 000-1234`, each
  against the raw find behind it;
- `pauseCampaign`, against a raw read, change-record insert and update;
- the raw query behind a page of 20 of the large organization's campaigns (newest first), and
  counting its contacts;
- `POST /api/campaigns` naming 100, 500 and 2,000 existing contacts, against the same reads
  and writes in raw PyMongo (the contacts by `_id` in `$in` chunks, as `Tenant.raw_find_in`
  reads them);
- `totalCount` of the contacts and campaigns, against the raw `count_documents` of both;
- a page of 20 campaigns filtered by a status one campaign in 20 has (one per list page), and
  by the status of the other 19, against the raw reads of their plan, beside the raw sorted
  read the list sent before.

`--campaign-lists 400 4000` runs only the campaign lists, at those numbers of campaigns in one
organization with 4,000 of another beside it (no contacts): numbered REST pages (the first,
the middle and the last) against their plan's raw reads and the sorted `skip` read the list
sent before, numbered pages filtered by a status 19 campaigns in 20 have (the first and the
middle) and by one 1 in 20 has, against the raw read of the list pages holding them and the
read of the status's matches the list sent before, and the first page in schedule-date order
against one list page's read and the raw sorted read.

`--only-scale` runs only the last three (the id-list, count and filtered-list cliffs of
issue 19).

Requests go through the app in process (ASGI, no socket). Prints p50/p95 per case and the ratio
of each API call to its floor, and how the small organization's figures moved between sizes.
Timing is reported, never failed on; the run exits 1 only if an answer was wrong.

    make bench            # or:
    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.scale [--sizes 20000 200000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from beanie import PydanticObjectId
from bson import ObjectId

from bench.create_campaign import (
    MESSAGE,
    ContactSource,
    bench_settings,
    floor_documents,
    raw_recipient,
    schedule_date,
    server_description,
    serving,
)
from bench.verdict import exit_code
from core.db import MongoClient, create_client
from main import create_app
from models import Campaign
from models.base import utcnow
from models.campaign import CampaignStats, CampaignStatus, CreatedBy
from services.storage import migrations
from services.storage.buckets import bucket_of
from services.storage.buckets import records as bucket_records
from services.storage.positions import CAMPAIGNS_PER_PAGE, CONTACTS_PER_PAGE
from services.storage.tenancy import IN_AT_ONCE, IN_CHUNK
from tests.support import auth, token

SMALL_ORGS = 4
SMALL_CONTACTS = 2_500
CAMPAIGNS = 500
LARGE_CAMPAIGNS = 400
RECIPIENTS_PER_CAMPAIGN = 100
LOAD_BATCH = 5_000
PAUSED_EVERY = 20
"""One campaign in 20 is paused: a filter on it matches one per list page."""
STATUSES = ("New Lead", "Contacted", "Qualified", "Customer")
CONTACT_QUERY = "query($id: ID!) { contact(id: $id) { id phoneNumber firstName } }"
TARGET_P95_MS = 15.0
LIST_NEIGHBOUR = 4_000
"""Campaigns of the organization beside the one whose campaign lists are timed."""


@dataclass
class Org:
    """One loaded organization and a sample of its contact ids to look up."""

    label: str
    id: ObjectId
    contacts: int
    sample: list[ObjectId] = field(default_factory=list)
    campaigns: int = 0


@dataclass
class Timings:
    api: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


# -- loading --------------------------------------------------------------------------------


async def load(db: Any, total: int, rng: random.Random, small_orgs: int) -> list[Org]:
    """Bulk-loads contacts, campaigns and recipients; returns the organizations."""
    orgs = [Org(f"small-{i + 1}", ObjectId(), SMALL_CONTACTS) for i in range(small_orgs)]
    large = Org("large", ObjectId(), total - small_orgs * SMALL_CONTACTS)
    orgs.append(large)
    now = utcnow()
    serial = 0
    for org in orgs:
        keep_every = max(1, org.contacts // 4_000)
        pages = [
            {"_id": f"{org.id}:{p}", "organizationId": org.id, "page": p}
            for p in range(-(-org.contacts // CONTACTS_PER_PAGE))
        ]
        await db.contact_pages.insert_many(pages)
        for start in range(0, org.contacts, LOAD_BATCH):
            docs: list[dict[str, Any]] = []
            for i in range(start, min(org.contacts, start + LOAD_BATCH)):
                serial += 1
                doc = {
                    "_id": ObjectId(),
                    "page": i // CONTACTS_PER_PAGE,  # as an import claims them
                    "version": 0,
                    "organizationId": org.id,
                    "firstName": f"First{serial}",
                    "lastName": f"Last{serial}",
                    "phoneNumber": f"+1555{serial:07d}",  # unique, never typed in by the bench
                    "email": None,
                    "contactStatus": STATUSES[serial % len(STATUSES)],
                    "process": None,
                    "tags": [],
                    "assignedTo": None,
                    "optedOut": False,
                    "createdAt": now,
                    "updatedAt": now,
                }
                docs.append(doc)
                if i % keep_every == 0:
                    org.sample.append(ObjectId(str(doc["_id"])))
            await db.contacts.insert_many(docs, ordered=False)
    for org in orgs:
        count = LARGE_CAMPAIGNS if org is large else (CAMPAIGNS - LARGE_CAMPAIGNS) // small_orgs
        org.campaigns = count
        campaigns: list[dict[str, Any]] = []
        recipients: list[dict[str, Any]] = []
        for n in range(count):
            campaign_id = PydanticObjectId()
            created = now - timedelta(minutes=n)
            chosen = rng.sample(org.sample, min(RECIPIENTS_PER_CAMPAIGN, len(org.sample)))
            stamp = {"organizationId": org.id, "createdAt": created, "updatedAt": created}
            recipients.extend(
                raw_recipient(campaign_id, c, stamp, seq) for seq, c in enumerate(chosen)
            )
            doc = campaign_doc(org, campaign_id, len(chosen), f"Campaign {n}", created)
            number = count - 1 - n  # as creations claim them
            doc["listSeq"], doc["page"] = number, number // CAMPAIGNS_PER_PAGE
            # campaign_doc schedules it a day after its creation
            doc["scheduleBucket"] = bucket_of(created + timedelta(days=1), None)
            if n % PAUSED_EVERY == 0:
                doc["status"] = CampaignStatus.PAUSED.value  # a sparse status, on every page
            campaigns.append(doc)
        await db.campaigns.insert_many(campaigns)
        await claim_list_numbers(db, org.id, count)
        await register_buckets(db, org.id, campaigns)
        for start in range(0, len(recipients), LOAD_BATCH):
            await db.recipients.insert_many(recipients[start : start + LOAD_BATCH])
    return orgs


# -- the cases ------------------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


@dataclass
class Session:
    http: httpx.AsyncClient
    db: Any
    source: ContactSource
    rng: random.Random
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok and len(self.problems) < 20:
            self.problems.append(what)


async def lookup_case(s: Session, org: Org, samples: int) -> Timings:
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        contact_id = s.rng.choice(org.sample)

        async def api(cid: ObjectId = contact_id) -> None:
            response = await s.http.post(
                "/graphql",
                json={"query": CONTACT_QUERY, "variables": {"id": str(cid)}},
                headers=headers,
            )
            data = response.json().get("data") or {}
            s.check((data.get("contact") or {}).get("id") == str(cid), f"contact {cid}")

        async def floor(cid: ObjectId = contact_id) -> None:
            doc = await s.db.contacts.find_one({"_id": cid, "organizationId": org.id})
            s.check(doc is not None, f"raw contact {cid}")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


def campaign_doc(
    org: Org,
    campaign_id: PydanticObjectId,
    total: int,
    name: str = "Bench",
    created: datetime | None = None,
) -> dict[str, Any]:
    """Returns a scheduled campaign as the service stores it."""
    now = created or utcnow()
    campaign = Campaign(
        id=campaign_id,
        organizationId=PydanticObjectId(org.id),
        name=name,
        message=MESSAGE,
        status=CampaignStatus.SCHEDULED,
        scheduleDate=now + timedelta(days=1),
        createdBy=CreatedBy(id=PydanticObjectId(), fullName="Bench Rep"),
        stats=CampaignStats(total=total),
        nextSeq=total,
        createdAt=now,
        updatedAt=now,
    )
    doc: dict[str, Any] = campaign.model_dump(by_alias=True, exclude_none=False)
    return doc


async def three_ids_case(s: Session, org: Org, samples: int) -> Timings:
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        ids = s.rng.sample(org.sample, 3)

        async def api(chosen: list[ObjectId] = ids) -> None:
            body = {
                "name": "Three",
                "message": MESSAGE,
                "selectedExistingContacts": [{"_id": str(i)} for i in chosen],
                "scheduleDate": schedule_date(),
            }
            response = await s.http.post("/api/campaigns", json=body, headers=headers)
            ok = response.status_code == 201 and response.json()["data"]["stats"]["total"] == 3
            s.check(ok, f"3 ids: {response.status_code} {response.text[:200]}")

        async def floor(chosen: list[ObjectId] = ids) -> None:
            found = [
                await s.db.contacts.find_one({"_id": i, "organizationId": org.id}) for i in chosen
            ]
            campaign_id = PydanticObjectId()
            now = utcnow()
            stamp = {"organizationId": org.id, "createdAt": now, "updatedAt": now}
            await s.db.recipients.insert_many(
                [raw_recipient(campaign_id, doc["_id"], stamp) for doc in found if doc is not None]
            )
            await s.db.campaigns.insert_one(campaign_doc(org, campaign_id, len(found)))

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def new_contacts_case(s: Session, org: Org, samples: int, count: int) -> Timings:
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        contacts = s.source.take(count)
        floor_contacts = s.source.take(count)

        async def api(chosen: list[dict[str, str]] = contacts) -> None:
            body = {
                "name": "New",
                "message": MESSAGE,
                "newContacts": chosen,
                "scheduleDate": schedule_date(),
            }
            response = await s.http.post("/api/campaigns", json=body, headers=headers)
            ok = response.status_code == 201 and response.json()["data"]["stats"]["total"] == count
            s.check(ok, f"{count} new: {response.status_code} {response.text[:200]}")

        docs = floor_documents(floor_contacts, org.id)

        async def floor(built: tuple[Any, Any, Any] = docs) -> None:
            contact_docs, recipient_docs, campaign = built
            await s.db.contacts.insert_many(contact_docs, ordered=False)
            await s.db.recipients.insert_many(recipient_docs, ordered=True)
            await s.db.campaigns.insert_one(campaign)

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


LISTING = """
query {
  campaigns(first: 20) {
    edges { node {
      id name createdBy { fullName } stats { total successRate }
      recipients(first: 5) { edges { node { status contact { firstName } } } }
    } }
  }
}
"""
CONTACTS_PAGE = "query { contacts(first: 20) { edges { node { id firstName } } } }"
CONTACT_SEARCH = "query($q: String!) { contacts(filter: {search: $q}) { edges { node { id } } } }"
RECIPIENTS_PAGE = """
query($id: ID!, $after: String) {
  campaign(id: $id) { recipients(first: 50, after: $after) { edges { node { id } } } }
}
"""


async def listing_case(s: Session, org: Org, samples: int) -> Timings:
    """A dashboard's first screen: 20 campaigns, each with its creator and 5 recipients."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.post("/graphql", json={"query": LISTING}, headers=headers)
            edges = ((response.json().get("data") or {}).get("campaigns") or {}).get("edges")
            s.check(len(edges or []) == 20, f"listing: {response.text[:200]}")

        async def floor() -> None:
            # The plan the service runs, in raw PyMongo: the sorted page, the first recipients
            # of its campaigns by `{campaignId: {$in}, head}`, and their contacts by `_id` `$in`.
            query = {"organizationId": org.id}
            page = (
                await s.db.campaigns.find(query)
                .sort([("createdAt", -1), ("_id", -1)])
                .limit(21)
                .to_list(None)
            )
            heads = {"$in": [c["_id"] for c in page[:20]]}
            rows = await s.db.recipients.find(
                {**query, "campaignId": heads, "head": True, "seq": {"$lte": 5}}
            ).to_list(None)
            contacts = list({r["contactId"] for r in rows})
            found = await s.db.contacts.find({**query, "_id": {"$in": contacts}}).to_list(None)
            s.check(len(found) == len(contacts), "listing floor contacts")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def contacts_page_case(s: Session, org: Org, samples: int) -> Timings:
    """The contacts screen: the first 20 contacts in list order; the floor is the raw read of
    the first page (`{organizationId, page: 0}`). The sorted query it replaced is timed in
    `listing_floor`."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.post("/graphql", json={"query": CONTACTS_PAGE}, headers=headers)
            edges = ((response.json().get("data") or {}).get("contacts") or {}).get("edges")
            s.check(len(edges or []) == 20, f"contacts: {response.text[:200]}")

        async def floor() -> None:
            rows = await s.db.contacts.find({"organizationId": org.id, "page": 0}).to_list(None)
            s.check(len(sorted(rows, key=lambda r: r["_id"])[:21]) == 21, "contacts floor")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def search_case(s: Session, org: Org, samples: int) -> Timings:
    """Finding a contact by a phone typed in another format (a contact with a real number,
    added as an import would: the loaded ones have numbers no one can type)."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        phone = s.source.take(1)[0]["phoneNumber"]
        now = utcnow()
        await s.db.contacts.insert_one(
            {
                "organizationId": org.id,
                "firstName": "Typed",
                "lastName": "",
                "phoneNumber": phone,
                "tags": [],
                "optedOut": False,
                "version": 0,
                "createdAt": now,
                "updatedAt": now,
            }
        )
        typed = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"

        async def api(q: str = typed) -> None:
            response = await s.http.post(
                "/graphql", json={"query": CONTACT_SEARCH, "variables": {"q": q}}, headers=headers
            )
            edges = ((response.json().get("data") or {}).get("contacts") or {}).get("edges")
            s.check(edges is not None and len(edges) == 1, f"search {q}: {response.text[:200]}")

        async def floor(p: str = phone) -> None:
            found = await s.db.contacts.find({"organizationId": org.id, "phoneNumber": p}).to_list(
                None
            )
            s.check(len(found) == 1, "search floor")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def lifecycle_case(s: Session, org: Org, samples: int) -> Timings:
    """Pausing a campaign: one numbered change claimed by a unique insert, then written."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        campaign_id = PydanticObjectId()
        await s.db.campaigns.insert_one(campaign_doc(org, campaign_id, 0))
        floor_id = PydanticObjectId()
        await s.db.campaigns.insert_one(campaign_doc(org, floor_id, 0))

        async def api(cid: PydanticObjectId = campaign_id) -> None:
            query = f'mutation {{ pauseCampaign(id: "{cid}") {{ campaign {{ status }} }} }}'
            response = await s.http.post("/graphql", json={"query": query}, headers=headers)
            data = (response.json().get("data") or {}).get("pauseCampaign") or {}
            s.check((data.get("campaign") or {}).get("status") == "PAUSED", "pause")

        async def floor(cid: PydanticObjectId = floor_id) -> None:
            scope = {"_id": cid, "organizationId": org.id}
            await s.db.campaigns.find_one(scope)
            await s.db.changes.insert_one(
                {"organizationId": org.id, "subjectId": cid, "version": 1, "action": "pause"}
            )
            await s.db.campaigns.update_one({**scope, "version": 0}, {"$set": {"status": "paused"}})

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def id_list_case(s: Session, org: Org, samples: int, count: int) -> Timings:
    """A campaign naming `count` existing contacts (REST `selectedExistingContacts`, the
    legacy `userIds`); the floor is the same reads and writes in raw PyMongo: the contacts by
    `_id` in `$in` chunks (`IN_CHUNK` ids, `IN_AT_ONCE` at a time), then the recipients and
    the campaign inserted."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):
        ids = s.rng.sample(org.sample, count)

        async def api(chosen: list[ObjectId] = ids) -> None:
            body = {
                "name": "Ids",
                "message": MESSAGE,
                "selectedExistingContacts": [{"_id": str(i)} for i in chosen],
                "scheduleDate": schedule_date(),
            }
            response = await s.http.post("/api/campaigns", json=body, headers=headers)
            ok = response.status_code == 201 and response.json()["data"]["stats"]["total"] == count
            s.check(ok, f"{count} ids: {response.status_code} {response.text[:200]}")

        async def floor(chosen: list[ObjectId] = ids) -> None:
            gate = asyncio.Semaphore(IN_AT_ONCE)

            async def one(start: int) -> list[Any]:
                part = {"$in": chosen[start : start + IN_CHUNK]}
                async with gate:
                    rows: list[Any] = await s.db.contacts.find(
                        {"_id": part, "organizationId": org.id}
                    ).to_list(None)
                return rows

            starts = range(0, len(chosen), IN_CHUNK)
            found = [d for ds in await asyncio.gather(*map(one, starts)) for d in ds]
            campaign_id = PydanticObjectId()
            now = utcnow()
            stamp = {"organizationId": org.id, "createdAt": now, "updatedAt": now}
            await s.db.recipients.insert_many(
                [raw_recipient(campaign_id, d["_id"], stamp, seq) for seq, d in enumerate(found)]
            )
            await s.db.campaigns.insert_one(campaign_doc(org, campaign_id, len(found)))

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


COUNTS = "query { contacts(first: 20) { totalCount } campaigns(first: 20) { totalCount } }"


FILTERED = """
query($status: CampaignStatus!) {
  campaigns(first: 20, filter: {status: [$status]}) { edges { node { id status } } } }
"""


async def filtered_listing_case(
    s: Session, org: Org, samples: int, status: CampaignStatus
) -> tuple[Timings, list[float]]:
    """A page of 20 campaigns in one status, newest first: paused (one campaign in 20, one per
    list page) or scheduled (the rest). The floor is the plan's reads in raw PyMongo (list
    pages by equality while they yield enough, then the status's matches from there on). Also
    timed: the raw sorted read of the matches that the list sent before (on FerretDB it reads
    and sorts all of the organization's campaigns in that status)."""
    t = Timings()
    sorted_reads: list[float] = []
    headers = auth(token(org=org.id))
    paused = -(-org.campaigns // PAUSED_EVERY)
    matching = paused if status is CampaignStatus.PAUSED else org.campaigns - paused
    query = {"organizationId": org.id, "status": status.value}
    last = (org.campaigns - 1) // CAMPAIGNS_PER_PAGE
    variables = {"status": status.name}
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.post(
                "/graphql", json={"query": FILTERED, "variables": variables}, headers=headers
            )
            edges = ((response.json().get("data") or {}).get("campaigns") or {}).get("edges")
            s.check(len(edges or []) == min(20, matching), f"filtered: {response.text[:200]}")

        async def floor() -> None:
            found: list[Any] = []
            page = last
            read = 0
            while page >= 0 and read < 4 and len(found) <= 20:
                found += await s.db.campaigns.find({**query, "page": page}).to_list(None)
                page -= 1
                read += 1
                if len(found) * 4 < 21 * read:
                    break
            if page >= 0 and len(found) <= 20:
                rest = s.db.campaigns.find({**query, "page": {"$lte": page}})
                found += await rest.sort([("page", -1), ("_id", -1)]).limit(21).to_list(None)
            s.check(len(found[:20]) == min(20, matching), "filtered floor")

        async def sorted_read() -> None:
            cursor = s.db.campaigns.find(query).sort([("createdAt", -1), ("_id", -1)])
            s.check(len(await cursor.limit(21).to_list(None)) == min(21, matching), "sorted")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
        sorted_reads.append(await timed(sorted_read))
    return t, sorted_reads


async def counts_case(s: Session, org: Org, samples: int) -> Timings:
    """`totalCount` of the contacts and of the campaigns; the floor is the raw
    `count_documents` of both (what a count costs the server itself)."""
    t = Timings()
    headers = auth(token(org=org.id))
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.post("/graphql", json={"query": COUNTS}, headers=headers)
            data = response.json().get("data") or {}
            total = (data.get("contacts") or {}).get("totalCount")
            s.check(isinstance(total, int) and total >= org.contacts, f"count: {response.text}")

        async def floor() -> None:
            await s.db.contacts.count_documents({"organizationId": org.id})
            await s.db.campaigns.count_documents({"organizationId": org.id})

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
    return t


async def listing_floor(s: Session, org: Org, samples: int) -> dict[str, list[float]]:
    pages: list[float] = []
    counts: list[float] = []
    sorted_pages: list[float] = []
    naive_listing: list[float] = []
    for _ in range(samples):

        async def naive() -> None:
            # The same screen with one `$in` per kind: what FerretDB reads the organization for.
            page = await s.db.campaigns.find({"organizationId": org.id}).limit(20).to_list(None)
            rows = await s.db.recipients.find(
                {"organizationId": org.id, "campaignId": {"$in": [c["_id"] for c in page]}}
            ).to_list(None)
            ids = list({r["contactId"] for r in rows})[:100]
            await s.db.contacts.find({"organizationId": org.id, "_id": {"$in": ids}}).to_list(None)

        async def by_id() -> None:
            cursor = s.db.contacts.find({"organizationId": org.id}).sort("_id", 1).limit(20)
            s.check(len(await cursor.to_list(None)) == 20, "sorted contacts")

        async def page() -> None:
            cursor = s.db.campaigns.find({"organizationId": org.id}).sort("createdAt", -1)
            docs = await cursor.limit(20).to_list(20)
            s.check(len(docs) == 20, "page of 20 campaigns")

        async def count() -> None:
            n = await s.db.contacts.count_documents({"organizationId": org.id})
            s.check(n >= org.contacts, f"count {n}")

        pages.append(await timed(page))
        counts.append(await timed(count))
        sorted_pages.append(await timed(by_id))
        naive_listing.append(await timed(naive))
    return {
        "page of 20 campaigns (raw)": pages,
        "count contacts (raw)": counts,
        "20 contacts sorted by _id (raw)": sorted_pages,
        "dashboard with $in (raw)": naive_listing,
    }


async def claim_list_numbers(db: Any, org_id: ObjectId, count: int) -> None:
    """The list numbers' claims of `count` campaigns (`services.storage.slots`), and the page
    claims the list read before them (so the previous version can run on the same load)."""
    await db.campaign_slots.insert_many(
        [{"_id": f"{org_id}:{n}", "organizationId": org_id, "seq": n} for n in range(count)]
    )
    await db.campaign_pages.insert_many(
        [
            {"_id": f"{org_id}:{p}", "organizationId": org_id, "page": p}
            for p in range(-(-count // CAMPAIGNS_PER_PAGE))
        ]
    )


async def register_buckets(db: Any, org_id: ObjectId, campaigns: list[dict[str, Any]]) -> None:
    """The schedule buckets' records of these campaigns (`services.storage.buckets`)."""
    used = [doc["scheduleBucket"] for doc in campaigns]
    rows = [{**row, "organizationId": org_id} for row in bucket_records(org_id, used)]
    await db.campaign_buckets.insert_many(rows)


async def load_campaigns_only(db: Any, org: Org, count: int) -> None:
    """`count` campaigns of `org` (no recipients), one a minute, as creations store them, with
    schedule dates spread one an hour over the weeks ahead, every 20th paused."""
    now = utcnow()
    docs: list[dict[str, Any]] = []
    for n in range(count):
        created = now - timedelta(minutes=count - n)
        doc = campaign_doc(org, PydanticObjectId(), 0, f"Campaign {n}", created)
        doc["listSeq"], doc["page"] = n, n // CAMPAIGNS_PER_PAGE
        doc["scheduleDate"] = when = now + timedelta(hours=(n * 7919) % count)
        doc["scheduleBucket"] = bucket_of(when, doc["page"])
        if n % PAUSED_EVERY == 0:
            doc["status"] = CampaignStatus.PAUSED.value
        docs.append(doc)
    for start in range(0, count, LOAD_BATCH):
        await db.campaigns.insert_many(docs[start : start + LOAD_BATCH])
    await claim_list_numbers(db, org.id, count)
    await register_buckets(db, org.id, docs)
    org.campaigns = count


async def numbered_page_case(
    s: Session, org: Org, samples: int, page: int
) -> tuple[Timings, list[float]]:
    """`GET /api/campaigns?page=N&limit=20` (the legacy numbered list). The floor is the
    plan's reads in raw PyMongo: the running total (its folds and entries), the probe for the
    last list number, the gaps of the chapters down to the page, and the list pages that hold
    it, each by equality. Also timed: the raw sorted read with `skip` the list sent before."""
    t = Timings()
    before: list[float] = []
    headers = auth(token(org=org.id))
    limit = 20
    skip = (page - 1) * limit
    last = org.campaigns - 1
    scope = {"organizationId": org.id}
    numbers = range(last - skip, max(-1, last - skip - limit), -1)
    pages = sorted({n // CAMPAIGNS_PER_PAGE for n in numbers}, reverse=True)
    chapters = range(last // 1000, (last - skip - limit + 1) // 1000 - 1, -1)
    wanted = [f"Campaign {n}" for n in numbers]
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.get(
                f"/api/campaigns?page={page}&limit={limit}", headers=headers
            )
            names = [c.get("name") for c in (response.json().get("data") or [])]
            s.check(names == wanted, f"numbered page {page}: {response.text[:200]}")

        async def floor() -> None:
            await s.db.tallies.find({**scope, "kind": "campaigns:fold"}).to_list(None)
            await s.db.tallies.find({**scope, "kind": "campaigns"}).to_list(None)
            await s.db.campaign_slots.find_one({"_id": f"{org.id}:{last + 1}"})
            for chapter in chapters:
                await s.db.campaign_slots.find({**scope, "chapter": chapter}).to_list(None)
            found: list[Any] = []
            for p in pages:
                found += await s.db.campaigns.find({**scope, "page": p}).to_list(None)
            s.check(len(found) >= len(wanted), "numbered floor")

        async def sorted_read() -> None:
            cursor = s.db.campaigns.find(scope).sort([("createdAt", -1), ("_id", -1)])
            docs = await cursor.skip(skip).limit(limit).to_list(None)
            s.check([d["name"] for d in docs] == wanted, "sorted skip read")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
        before.append(await timed(sorted_read))
    return t, before


async def status_page_case(
    s: Session, org: Org, samples: int, status: CampaignStatus, page: int
) -> tuple[Timings, list[float]]:
    """`GET /api/campaigns?status=S&page=N&limit=20`. The floor is the raw read of the list
    pages that hold the page's campaigns, narrowed by the status (one `$in` of page numbers).
    Also timed: the read the list sent before (the status's matches, newest first, up to
    the page's end)."""
    t = Timings()
    before: list[float] = []
    headers = auth(token(org=org.id))
    limit = 20
    skip = (page - 1) * limit
    scope = {"organizationId": org.id, "status": status.value}
    paused = CampaignStatus.PAUSED

    def status_of(n: int) -> CampaignStatus:
        return paused if n % PAUSED_EVERY == 0 else CampaignStatus.SCHEDULED

    matches = [n for n in range(org.campaigns - 1, -1, -1) if status_of(n) is status]
    numbers = matches[skip : skip + limit]
    pages = sorted({n // CAMPAIGNS_PER_PAGE for n in numbers}, reverse=True)
    wanted = [f"Campaign {n}" for n in numbers]
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.get(
                f"/api/campaigns?status={status.value}&page={page}&limit={limit}",
                headers=headers,
            )
            body = response.json()
            names = [c.get("name") for c in (body.get("data") or [])]
            s.check(names == wanted, f"{status} page {page}: {response.text[:200]}")
            total = (body.get("pagination") or {}).get("total")
            s.check(total == len(matches), f"{status} total {total} != {len(matches)}")

        async def floor() -> None:
            query = {**scope, "page": {"$in": pages}}
            found = await s.db.campaigns.find(query).to_list(None)
            s.check(len(found) >= len(wanted), "status page floor")

        async def matches_read() -> None:
            cursor = s.db.campaigns.find(scope).sort([("listSeq", -1)]).limit(skip + limit)
            docs = await cursor.to_list(None)
            s.check([d["name"] for d in docs[skip:]] == wanted, "status matches read")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
        before.append(await timed(matches_read))
    return t, before


SCHEDULED = """
query($after: String) { campaigns(first: 20, after: $after,
  orderBy: {field: SCHEDULE_DATE, direction: ASC}) {
  edges { node { id } } pageInfo { endCursor } } }
"""


async def schedule_order_case(s: Session, org: Org, samples: int) -> tuple[Timings, list[float]]:
    """The first page of 20 in schedule-date order over GraphQL. The floor is the plan's
    reads in raw PyMongo: the organization's blocks of schedule buckets, the buckets of the
    first block, then bucket after bucket by equality until 21 campaigns are read; also
    timed: the raw sorted read of the organization's campaigns by `(scheduleDate, _id)` with
    a limit (what the order sent before, and what MongoDB answers from its index)."""
    t = Timings()
    sorted_reads: list[float] = []
    headers = auth(token(org=org.id))
    scope = {"organizationId": org.id}
    for _ in range(samples):

        async def api() -> None:
            response = await s.http.post("/graphql", json={"query": SCHEDULED}, headers=headers)
            edges = ((response.json().get("data") or {}).get("campaigns") or {}).get("edges")
            s.check(len(edges or []) == 20, f"schedule order: {response.text[:200]}")

        async def floor() -> None:
            blocks = await s.db.campaign_buckets.find({**scope, "kind": "block"}).to_list(None)
            found: list[Any] = []
            for block in sorted(row["block"] for row in blocks):
                query = {**scope, "kind": "bucket", "block": block}
                days = await s.db.campaign_buckets.find(query).to_list(None)
                for bucket in sorted(row["bucket"] for row in days):
                    query = {**scope, "scheduleBucket": bucket}
                    found += await s.db.campaigns.find(query).to_list(None)
                    if len(found) > 20:
                        break
                if len(found) > 20:
                    break
            s.check(len(found) > 20, "bucket floor")

        async def sorted_read() -> None:
            cursor = s.db.campaigns.find(scope).sort([("scheduleDate", 1), ("_id", 1)])
            s.check(len(await cursor.limit(21).to_list(None)) == 21, "sorted by date")

        t.api.append(await timed(api))
        t.floor.append(await timed(floor))
        sorted_reads.append(await timed(sorted_read))
    return t, sorted_reads


async def run_campaign_lists(
    uri: str, admin: MongoClient, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The campaign-list cases alone, at `count` campaigns in one organization with
    `LIST_NEIGHBOUR` of another beside it (no contacts or recipients)."""
    settings = bench_settings(uri, 1000, 1 << 20)
    db = admin[settings.mongodb_db]
    app = create_app(settings)
    result: dict[str, Any] = {"campaigns": count, "cases": {}}
    try:
        async with serving(app) as http:
            org = Org(f"{count}", ObjectId(), 0)
            await load_campaigns_only(db, Org("beside", ObjectId(), 0), LIST_NEIGHBOUR)
            await load_campaigns_only(db, org, count)
            await migrations.count_existing_data()
            await migrations.count_campaigns_by_status()
            if args.settle:
                await asyncio.sleep(args.settle)
            print(
                f"\n== {count:,} campaigns in one organization, {LIST_NEIGHBOUR:,} in another",
                flush=True,
            )
            s = Session(http, db, ContactSource(), random.Random(count))
            last_page = -(-count // 20)
            references: dict[str, list[float]] = {}
            cases: dict[str, Timings] = {}
            for page in sorted({1, last_page // 2, last_page}):
                timings, before = await numbered_page_case(s, org, args.listings, page)
                cases[f"REST page {page} of {last_page}"] = timings
                references[f"page {page} sorted+skip (raw, before)"] = before
            scheduled_pages = -(-(count - count // PAUSED_EVERY) // 20)
            for status, page in (
                (CampaignStatus.SCHEDULED, 1),
                (CampaignStatus.SCHEDULED, max(1, scheduled_pages // 2)),
                (CampaignStatus.PAUSED, 1),
            ):
                timings, before = await status_page_case(s, org, args.listings, status, page)
                cases[f"REST {status.value} page {page}"] = timings
                references[f"{status.value} page {page} matches (raw, before)"] = before
            timings, before = await schedule_order_case(s, org, args.listings)
            cases["campaigns(SCHEDULE_DATE) first 20"] = timings
            references["by date sorted (raw)"] = before
            for name, t in cases.items():
                row = summarize(t)
                result["cases"][name] = row
                print_row(name, org, row)
            for name, values in references.items():
                reference = {"p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95)}
                result["cases"][name] = reference
                print(
                    f"  {name:<32} {org.label:<8} "
                    f"{reference['p50_ms']:8.1f} {reference['p95_ms']:8.1f}",
                    flush=True,
                )
            result["problems"] = s.problems
    finally:
        await admin.drop_database(settings.mongodb_db)
    return result


# -- the run ------------------------------------------------------------------------------


async def run_size(
    uri: str, admin: MongoClient, total: int, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(total)
    settings = bench_settings(uri, 1000, 1 << 20)
    db = admin[settings.mongodb_db]
    app = create_app(settings)
    result: dict[str, Any] = {"contacts": total, "cases": {}}
    try:
        async with serving(app) as http:
            started = time.perf_counter()
            orgs = await load(db, total, rng, args.small_orgs)
            # Loaded behind the app's back: set the running totals as an operator would.
            await migrations.count_existing_data()
            await migrations.count_campaigns_by_status()
            result["load_seconds"] = time.perf_counter() - started
            if args.settle:
                # Right after a bulk load PostgreSQL has no statistics for the new rows yet
                # and may plan an organization's whole index list into a point lookup; the
                # embedded cluster analyzes within ~5 s. Measure the steady state.
                await asyncio.sleep(args.settle)
            print(
                f"\n== {total:,} contacts in {len(orgs)} organizations, {CAMPAIGNS} campaigns, "
                f"{CAMPAIGNS * RECIPIENTS_PER_CAMPAIGN:,} recipients "
                f"(loaded in {result['load_seconds']:.1f} s)",
                flush=True,
            )
            s = Session(http, db, ContactSource(), rng)
            for org in (orgs[0], orgs[-1]):
                cases = {
                    **{
                        f"POST {n:,} existing ids": await id_list_case(s, org, args.id_lists, n)
                        for n in args.id_counts
                        if args.id_lists and n <= len(org.sample)
                    },
                    "totalCount (contacts, campaigns)": await counts_case(s, org, args.listings),
                }
                references: dict[str, list[float]] = {}
                for status, label in (
                    (CampaignStatus.PAUSED, "1"),
                    (CampaignStatus.SCHEDULED, "19"),
                ):
                    filtered, sorted_reads = await filtered_listing_case(
                        s, org, args.listings, status
                    )
                    cases[f"campaigns(status: {label} in 20)"] = filtered
                    references[f"{label} in 20 sorted (raw, before)"] = sorted_reads
                if args.only_scale:
                    cases = {k: v for k, v in cases.items() if v.api}
                else:
                    cases |= {
                        "contact(id) GraphQL": await lookup_case(s, org, args.lookups),
                        "POST 3 existing ids": await three_ids_case(s, org, args.creations),
                        f"POST {args.new_contacts:,} new contacts": await new_contacts_case(
                            s, org, args.big_creations, args.new_contacts
                        ),
                        "campaigns(20) + recipients(5)": await listing_case(s, org, args.listings),
                        "contacts(first: 20)": await contacts_page_case(s, org, args.listings),
                        "contacts(search: phone)": await search_case(s, org, args.listings),
                        "pauseCampaign": await lifecycle_case(s, org, args.creations),
                    }
                for name, t in cases.items():
                    row = summarize(t)
                    result["cases"][f"{name} | {org.label}"] = row
                    print_row(name, org, row)
                for name, values in references.items():
                    reference = {"p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95)}
                    result["cases"][f"{name} | {org.label}"] = reference
                    print(
                        f"  {name:<32} {org.label:<8} "
                        f"{reference['p50_ms']:8.1f} {reference['p95_ms']:8.1f}",
                        flush=True,
                    )
            raw_reads = {} if args.only_scale else await listing_floor(s, orgs[-1], args.listings)
            for name, values in raw_reads.items():
                row = {"p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95)}
                result["cases"][f"{name} | large"] = row
                print(f"  {name:<32} {'large':<8} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f}")
            result["problems"] = s.problems
    finally:
        await admin.drop_database(settings.mongodb_db)
    return result


def summarize(t: Timings) -> dict[str, float]:
    row = {
        "p50_ms": pct(t.api, 0.5),
        "p95_ms": pct(t.api, 0.95),
        "floor_p50_ms": pct(t.floor, 0.5),
        "floor_p95_ms": pct(t.floor, 0.95),
        "samples": len(t.api),
    }
    row["ratio_p50"] = row["p50_ms"] / row["floor_p50_ms"] if row["floor_p50_ms"] else 0.0
    return row


def print_row(name: str, org: Org, row: dict[str, float]) -> None:
    if not getattr(print_row, "header", False):
        print(
            f"  {'case':<32} {'org':<8} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'floor p50':>10} {'floor p95':>10} {'ratio p50':>10}"
        )
        print_row.header = True  # type: ignore[attr-defined]
    print(
        f"  {name:<32} {org.label:<8} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} "
        f"{row['floor_p50_ms']:10.1f} {row['floor_p95_ms']:10.1f} {row['ratio_p50']:10.2f}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print(
            "MONGODB_URI is not set; run through `make bench` (scripts.dbserver)", file=sys.stderr
        )
        return 2
    admin = create_client(bench_settings(uri, 1, 1))
    try:
        server = await server_description(admin)
        print(f"server: {server['name']} {server['version']} ({uri.split('@')[-1]})")
        if args.campaign_lists:
            lists = []
            for count in args.campaign_lists:
                print_row.header = False  # type: ignore[attr-defined]
                lists.append(await run_campaign_lists(uri, admin, count, args))
            return exit_code([p for r in lists for p in r["problems"]])
        results = []
        for total in args.sizes:
            print_row.header = False  # type: ignore[attr-defined]
            results.append(await run_size(uri, admin, total, args))
    finally:
        await admin.close()
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"\nsmall organization, {first['contacts']:,} -> {last['contacts']:,} contacts:")
        for key, row in first["cases"].items():
            if key.endswith("| small-1"):
                other = last["cases"][key]
                print(
                    f"  {key.split(' | ')[0]:<32} p95 {row['p95_ms']:7.1f} -> "
                    f"{other['p95_ms']:7.1f} ms"
                )
    for r in results:
        for org in ("small-1", "large"):
            if f"contact(id) GraphQL | {org}" not in r["cases"]:
                continue  # --only-scale
            p95 = r["cases"][f"contact(id) GraphQL | {org}"]["p95_ms"]
            verdict = "meets" if p95 <= TARGET_P95_MS else "misses"
            print(
                f"target: contact(id) p95 {p95:.1f} ms at {r['contacts']:,} ({org}) "
                f"{verdict} <= {TARGET_P95_MS:.0f} ms"
            )
    if args.json:
        report = json.dumps({"server": server, "results": results}, indent=2)
        await asyncio.to_thread(Path(args.json).write_text, report)
    return exit_code([p for r in results for p in r["problems"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--lookups", type=int, default=200, help="samples per lookup case")
    parser.add_argument("--creations", type=int, default=40, help="samples of 3-id creation")
    parser.add_argument("--big-creations", type=int, default=5, help="samples of bulk creation")
    parser.add_argument("--new-contacts", type=int, default=1000)
    parser.add_argument("--listings", type=int, default=10, help="samples of each listing")
    parser.add_argument(
        "--settle", type=float, default=15.0, help="seconds to wait after loading (statistics)"
    )
    parser.add_argument("--id-lists", type=int, default=3, help="samples of each id list")
    parser.add_argument("--id-counts", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument(
        "--only-scale", action="store_true", help="only the id-list and count cases"
    )
    parser.add_argument(
        "--campaign-lists",
        type=int,
        nargs="+",
        metavar="CAMPAIGNS",
        help="only the campaign-list cases, at these numbers of campaigns (e.g. 400 4000)",
    )
    parser.add_argument("--small-orgs", type=int, default=SMALL_ORGS)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if min(args.sizes) <= args.small_orgs * SMALL_CONTACTS:
        parser.error(f"sizes must exceed {args.small_orgs * SMALL_CONTACTS:,} (the small orgs)")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
