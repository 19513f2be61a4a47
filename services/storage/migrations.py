"""Versioned migrations, applied at start by every API process and worker (`migrate`).

A layout change ships with a migration that brings older data to it, so an upgrade never
strands data (documents a new version would no longer list, send or count). Each migration is
idempotent and resumable: it works in steps that are each safe to repeat, so running it again
after an interruption finishes the job.

The `migrations` collection records them. Whoever starts a version claims an attempt with a
unique insert (`"<version>:<attempt>"`, with a lease it renews while it works), so of two
processes starting at once one runs it and the other waits for the `"<version>:done"` record.
An attempt whose lease ran out (its process died) is taken over by the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from beanie import Document
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, OperationFailure

from models import (
    Campaign,
    Contact,
    ContactSend,
    Message,
    MigrationRecord,
    Recipient,
    Reply,
    Suppression,
)
from models.base import utcnow
from models.campaign import CampaignStatus
from models.compliance import prefix_key
from models.recipient import HEAD_SIZE, RECIPIENT_BATCH
from services.storage import buckets, positions, slots, tallies
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
POLL_SECONDS = 0.2
PAGE_BACKFILL_BATCH = 1000
INDEX_NOT_FOUND = 27


@dataclass(frozen=True)
class Migration:
    """One layout change: `run` brings every organization's data to it, safe to repeat."""

    version: int
    name: str
    run: Callable[[], Awaitable[None]]


async def organizations() -> list[ObjectId]:
    """Every organization that has contacts or campaigns: one read of each collection's
    organization ids (a migration's work, never a request's)."""
    found: set[ObjectId] = set()
    for model in (Contact, Campaign):
        found.update(await model.get_pymongo_collection().distinct("organizationId"))
    return sorted(found)


async def give_contacts_list_pages() -> None:
    """Contacts stored before list positions existed get a page, as new ones do: until then
    no list shows them. Each batch is claimed pages plus one update per contact; a repeat
    finds only the contacts still without one (a crash costs at most unused page claims,
    which readers walk past)."""
    for organization_id in await organizations():
        tenant = Tenant.for_organization(organization_id)
        while True:
            rows = await tenant.raw_find(Contact, {"page": None}, {"_id": 1}).to_list(
                PAGE_BACKFILL_BATCH
            )
            if not rows:
                break
            pages = await positions.claim_pages(tenant, len(rows))
            await tenant.update_each(
                Contact,
                [
                    (row["_id"], {"page": pages[i // positions.CONTACTS_PER_PAGE]})
                    for i, row in enumerate(rows)
                ],
            )


async def give_campaigns_list_pages() -> None:
    """Campaigns stored before their list positions get pages in the order they were created
    (the oldest first, so the newest end up on the last page). As for contacts, a repeat finds
    only the campaigns still without one."""
    for organization_id in await organizations():
        tenant = Tenant.for_organization(organization_id)
        while True:
            fields = {"_id": 1, "createdAt": 1}
            rows = await tenant.raw_find(Campaign, {"page": None}, fields).to_list()
            if not rows:
                break
            rows.sort(
                key=lambda row: (row.get("createdAt") or row["_id"].generation_time, row["_id"])
            )
            rows = rows[:PAGE_BACKFILL_BATCH]
            pages = await positions.CAMPAIGNS.claim_pages(tenant, len(rows))
            per_page = positions.CAMPAIGNS_PER_PAGE
            await tenant.update_each(
                Campaign,
                [(row["_id"], {"page": pages[i // per_page]}) for i, row in enumerate(rows)],
            )


async def number_recipients_stored_before_seq() -> None:
    """Data stored before recipients were numbered (`seq`, `batch`, `head`) and changes
    versioned: no page or batch read finds such recipients, the dispatcher counts a campaign's
    batches from its `nextSeq` (none: nothing to send), and a change claims `version + 1` of
    a campaign or contact whose `version` must be there to match.

    Each such campaign (one without `nextSeq`) gets its recipients numbered in `_id` order
    (the order they were added) with their contacts' list pages, then `nextSeq` and `version`.
    A repeat finds the campaigns still without `nextSeq` and numbers only the recipients still
    without `seq`, after those already numbered, so an interrupted run loses or repeats no
    number. Contacts without `version` get 0 (no change was recorded for them)."""
    for organization_id in await organizations():
        tenant = Tenant.for_organization(organization_id)
        fields = {"_id": 1, "nextSeq": 1, "version": 1}
        for row in await tenant.raw_find(Campaign, {}, fields).to_list():
            if "nextSeq" in row and "version" in row:
                continue
            next_seq = row.get("nextSeq")
            if next_seq is None:
                next_seq = await _number_recipients(tenant, row["_id"])
            update = {"nextSeq": next_seq, "version": row.get("version") or 0}
            await tenant.update_each(Campaign, [(row["_id"], update)])
        unversioned = [
            (row["_id"], {"version": 0})
            async for row in tenant.raw_find(Contact, {}, {"_id": 1, "version": 1})
            if row.get("version") is None
        ]
        await tenant.update_each(Contact, unversioned)


async def _number_recipients(tenant: Tenant, campaign_id: ObjectId) -> int:
    """Numbers the campaign's recipients that have no `seq` yet; returns its next `seq`."""
    rows = await tenant.raw_find(
        Recipient, {"campaignId": campaign_id}, {"_id": 1, "seq": 1, "contactId": 1}
    ).to_list()
    numbered = [int(row["seq"]) for row in rows if row.get("seq") is not None]
    waiting = sorted((row for row in rows if row.get("seq") is None), key=lambda r: r["_id"])
    first = max(numbered, default=-1) + 1
    if not waiting:
        return first
    contact_ids = [row["contactId"] for row in waiting]
    found = await tenant.raw_find_in(Contact, "_id", contact_ids, {"page": 1})
    pages = {doc["_id"]: doc.get("page") for doc in found}
    await tenant.update_each(
        Recipient,
        [
            (
                row["_id"],
                {
                    "seq": seq,
                    "batch": seq // RECIPIENT_BATCH,
                    "head": seq < HEAD_SIZE,
                    "contactPage": pages.get(row["contactId"]),
                },
            )
            for seq, row in enumerate(waiting, start=first)
        ],
    )
    return first + len(waiting)


async def number_campaigns_in_list() -> None:
    """Campaigns stored before list numbers (`listSeq`, `services.storage.slots`) get them in
    the order they were created, the oldest first, and their list page becomes the number's
    (`listSeq // CAMPAIGNS_PER_PAGE`; the page claims they had are no longer read): until
    then the numbered REST list does not show them. Then campaigns without a schedule bucket
    (`services.storage.buckets`) get theirs, registered first: until then the schedule-date
    order does not show them.

    Each organization's campaigns are read once. A repeat after an interruption first
    records as gaps the numbers the interrupted run claimed but gave no campaign, then
    numbers only what is still unnumbered, after what is; buckets are set again from the
    campaign's date and page, which gives the same bucket."""
    per_page = positions.CAMPAIGNS_PER_PAGE
    for organization_id in await organizations():
        tenant = Tenant.for_organization(organization_id)
        fields = {"_id": 1, "createdAt": 1, "listSeq": 1, "scheduleDate": 1, "scheduleBucket": 1}
        rows = await tenant.raw_find(Campaign, {}, fields).to_list()
        waiting = [row for row in rows if row.get("listSeq") is None]
        if waiting:
            numbered = {int(row["listSeq"]) for row in rows if row.get("listSeq") is not None}
            last = await slots.CAMPAIGNS.last(tenant)
            await slots.CAMPAIGNS.record_gaps(
                tenant, [n for n in range(last + 1) if n not in numbered]
            )
            waiting.sort(
                key=lambda row: (_aware(row.get("createdAt") or _created(row)), row["_id"])
            )
            for start in range(0, len(waiting), PAGE_BACKFILL_BATCH):
                batch = waiting[start : start + PAGE_BACKFILL_BATCH]
                numbers = await slots.CAMPAIGNS.claim_run(tenant, len(batch))
                for n, row in zip(numbers, batch, strict=True):
                    row["listSeq"] = n
                await tenant.update_each(
                    Campaign,
                    [
                        (
                            row["_id"],
                            {"listSeq": row["listSeq"], "page": row["listSeq"] // per_page},
                        )
                        for row in batch
                    ],
                )
        unplaced = [
            (row["_id"], buckets.bucket_of(row.get("scheduleDate"), row["listSeq"] // per_page))
            for row in rows
            if row.get("scheduleBucket") is None
        ]
        await buckets.register(tenant, [bucket for _, bucket in unplaced])
        await tenant.update_each(
            Campaign, [(row_id, {"scheduleBucket": bucket}) for row_id, bucket in unplaced]
        )


def _created(row: dict[str, object]) -> datetime:
    document_id = row["_id"]
    assert isinstance(document_id, ObjectId)
    return document_id.generation_time


async def count_existing_data() -> None:
    """Sets each organization's running totals from a count of what it holds (see
    `services.storage.tallies`); a repeat recounts and changes nothing."""
    for organization_id in await organizations():
        tenant = Tenant.for_organization(organization_id)
        for kind in (tallies.CONTACTS, tallies.CAMPAIGNS):
            await tallies.recount(tenant, kind)


async def count_campaigns_by_status() -> None:
    """Sets each organization's running totals of campaigns per status (a status filter's
    `totalCount` and the REST list's `pagination.total`) from a count of each status; a
    repeat recounts and changes nothing."""
    for organization_id in await Campaign.get_pymongo_collection().distinct("organizationId"):
        tenant = Tenant.for_organization(organization_id)
        for status in CampaignStatus:
            await tallies.recount(tenant, tallies.campaigns_in(status.value))


async def give_suppressions_list_pages() -> None:
    """Numbers suppressed before the list had pages get pages and prefix keys (until then the
    list and prefix searches do not show them), each organization's in number order, and
    the list's running total is counted. The numbers still without a page are read once per
    organization; a repeat finds only those still without one. The index the list was read
    by before, `(organizationId, _id)`, no longer serves anything: every insert paid for it."""
    collection = Suppression.get_pymongo_collection()
    if "org_id" in {index["name"] async for index in await collection.list_indexes()}:
        await collection.drop_index("org_id")
    per_page = positions.SUPPRESSIONS_PER_PAGE
    for organization_id in sorted(await collection.distinct("organizationId")):
        tenant = Tenant.for_organization(organization_id)
        fields = {"_id": 1, "phoneNumber": 1}
        rows = [row async for row in tenant.raw_find(Suppression, {"page": None}, fields)]
        rows.sort(key=lambda row: str(row["phoneNumber"]))
        for start in range(0, len(rows), PAGE_BACKFILL_BATCH):
            batch = rows[start : start + PAGE_BACKFILL_BATCH]
            pages = await positions.SUPPRESSIONS.claim_pages(tenant, len(batch))
            await tenant.update_each(
                Suppression,
                [
                    (
                        row["_id"],
                        {"page": pages[i // per_page], "prefixKey": prefix_key(row["phoneNumber"])},
                    )
                    for i, row in enumerate(batch)
                ],
            )
        await tallies.recount(tenant, tallies.SUPPRESSIONS)


RETIRED_INDEXES: Mapping[type[Document], tuple[str, ...]] = {
    Campaign: ("org_status_schedule", "org_status_created_id"),
    Contact: ("org_status",),
    ContactSend: ("org_contact",),
    Message: ("org_status",),
    Recipient: ("org_campaign_seq",),
    Reply: ("org_campaign",),
}
"""Indexes once declared that no query needs any more, whose every query another index serves
as well: sort orders of the campaign lists from before list pages and schedule buckets, and
indexes the suite's index gate found idle (docs/database.md, "Every query is served by a
declared index")."""


async def drop_retired_indexes() -> None:
    """Drops the `RETIRED_INDEXES` a database still has: the start creates only what is
    declared and never drops, and every index costs each write of its fields. A repeat finds
    them gone; one dropped meanwhile by another process is not an error."""
    for model, names in RETIRED_INDEXES.items():
        collection = model.get_pymongo_collection()
        existing = {index["name"] async for index in await collection.list_indexes()}
        for name in names:
            if name in existing:
                try:
                    await collection.drop_index(name)
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:  # not another process's drop meanwhile
                        raise


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "list pages for contacts stored before them", give_contacts_list_pages),
    Migration(2, "running totals of contacts and campaigns", count_existing_data),
    Migration(3, "list pages for campaigns stored before them", give_campaigns_list_pages),
    Migration(4, "list pages and prefix keys for suppressed numbers", give_suppressions_list_pages),
    Migration(
        6,
        "numbered recipients and versions for data stored before them",
        number_recipients_stored_before_seq,
    ),
    Migration(
        7,
        "list numbers and schedule buckets for campaigns stored before them",
        number_campaigns_in_list,
    ),
    Migration(8, "indexes no query uses any more", drop_retired_indexes),
    Migration(9, "running totals of campaigns per status", count_campaigns_by_status),
)
_registered: list[Migration] = []


def register(migration: Migration) -> Migration:
    """Adds a migration of a domain above storage, which this module may not import (the
    conversations domain's, registered when its module is imported, as `main` and `worker`
    do before they migrate)."""
    if migration not in _registered:
        _registered.append(migration)
    return migration


def all_migrations() -> list[Migration]:
    """Every migration, in version order; two with one version are refused, since the first
    one's done record would mark the other done without running it."""
    found = sorted([*MIGRATIONS, *_registered], key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(
    migrations: Sequence[Migration] | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = LEASE,
    poll_seconds: float = POLL_SECONDS,
) -> list[int]:
    """Applies, in version order, every migration not yet recorded as done; returns the
    versions this call ran (by default every one, `all_migrations`). Waits while another
    process runs one."""
    if migrations is None:
        migrations = all_migrations()
    holder = f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.get_running_loop()):x}"
    ran: list[int] = []
    # One read for all: a start on an up-to-date database sends only this one.
    done = {
        str(row["_id"])
        async for row in MigrationRecord.get_pymongo_collection().find(
            {"_id": {"$in": [f"{m.version}:done" for m in migrations]}}, {"_id": 1}
        )
    }
    for migration in sorted(migrations, key=lambda m: m.version):
        if f"{migration.version}:done" in done:
            continue
        while not await _done(migration.version):
            attempt = await _claim(migration, holder, clock, lease)
            if attempt is None:
                await asyncio.sleep(poll_seconds)
                continue
            await _run(migration, attempt, clock, lease)
            ran.append(migration.version)
    return ran


async def _done(version: int) -> bool:
    return await MigrationRecord.find_one({"_id": f"{version}:done"}) is not None


async def _claim(
    migration: Migration, holder: str, clock: Callable[[], datetime], lease: timedelta
) -> str | None:
    """Claims the next attempt when no attempt holds a live lease; returns its `_id`."""
    attempts = await MigrationRecord.find({"version": migration.version}).to_list()
    numbers = [a.attempt for a in attempts if a.attempt is not None]
    now = clock()
    live = [a for a in attempts if a.leaseUntil is not None and _aware(a.leaseUntil) > now]
    if live:
        return None
    number = max(numbers, default=0) + 1
    claim = MigrationRecord(
        id=f"{migration.version}:{number}",
        version=migration.version,
        name=migration.name,
        attempt=number,
        holder=holder,
        leaseUntil=now + lease,
    )
    try:
        await claim.insert()
    except DuplicateKeyError:
        return None  # another process claimed it first
    if number > 1:
        logger.warning("migration %s: resuming (attempt %s)", migration.version, number)
    return str(claim.id)


async def _run(
    migration: Migration, attempt: str, clock: Callable[[], datetime], lease: timedelta
) -> None:
    """Runs the migration while renewing the attempt's lease (only its holder writes it),
    then records the version as done."""
    collection = MigrationRecord.get_pymongo_collection()

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            await collection.update_one({"_id": attempt}, {"$set": {"leaseUntil": clock() + lease}})

    renewing = asyncio.create_task(renew())
    try:
        logger.info("migration %s: %s", migration.version, migration.name)
        await migration.run()
    except Exception:
        # Let the next start (or a waiting process) take over at once; the work is resumable.
        await collection.update_one({"_id": attempt}, {"$set": {"leaseUntil": clock()}})
        raise
    finally:
        renewing.cancel()
    done = MigrationRecord(
        id=f"{migration.version}:done", version=migration.version, name=migration.name
    )
    done.doneAt = clock()
    with contextlib.suppress(DuplicateKeyError):  # a taken-over attempt finished too
        await done.insert()


def _aware(moment: datetime) -> datetime:
    """Stored dates come back naive (UTC); the clock's are aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
