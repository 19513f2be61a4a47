"""Reading campaigns, their recipients and their history, always inside one organization.

Listing sorts on `(field, _id)` with a keyset cursor, which an index answers on MongoDB.
Recipients are read by `{campaignId, batch}` equality plus a `seq` range (see
`models.recipient`), so a page costs the same on the first batch and the thousandth, on
MongoDB and on FerretDB alike.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, NotFound, Path
from models import Campaign, Change, Recipient
from models.campaign import CampaignStatus, CampaignType
from models.recipient import HEAD_SIZE, RECIPIENT_BATCH, RecipientRow, RecipientStatus
from services.campaigns.stats import with_live_stats
from services.dates import parse_instant
from services.inputs import CampaignFilter, CampaignOrder, CampaignOrderField
from services.storage import buckets, history, positions, slots, tallies
from services.storage.pages import Cursors, LazyCursors, Page, page_size
from services.storage.tenancy import Tenant, one_of

MAX_SEARCH = 100


async def get_campaign(tenant: Tenant, campaign_id: str) -> Campaign:
    """Returns the campaign, or raises `NotFound` (also for another organization's id)."""
    campaign = await tenant.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("campaign")
    await with_live_stats(tenant, [campaign])
    return campaign


def campaign_query(filter: CampaignFilter | None, at: Path = ("filter",)) -> dict[str, Any]:
    """Turns a filter into a query (without the organization, which `Tenant` adds)."""
    if filter is None:
        return {}
    errors: list[FieldError] = []
    query: dict[str, Any] = {}
    if filter.status:
        statuses = [
            _choice(CampaignStatus, s, (*at, "status", i), errors)
            for i, s in enumerate(filter.status)
        ]
        query["status"] = one_of(statuses)
    if filter.type is not None:
        query["type"] = _choice(CampaignType, filter.type, (*at, "type"), errors)
    if filter.createdBy is not None:
        if ObjectId.is_valid(filter.createdBy):
            query["createdBy._id"] = ObjectId(filter.createdBy)
        else:
            errors.append(FieldError((*at, "createdBy"), "INVALID_ID", "Not an id"))
    _range(
        query,
        "scheduleDate",
        filter.scheduledAfter,
        filter.scheduledBefore,
        (*at, "scheduledAfter"),
        (*at, "scheduledBefore"),
        errors,
    )
    _range(
        query,
        "createdAt",
        filter.createdAfter,
        filter.createdBefore,
        (*at, "createdAfter"),
        (*at, "createdBefore"),
        errors,
    )
    if filter.search is not None and filter.search.strip():
        text = filter.search.strip()
        if len(text) > MAX_SEARCH:
            errors.append(
                FieldError((*at, "search"), "TOO_LONG", f"At most {MAX_SEARCH} characters")
            )
        query["name"] = {"$regex": re.escape(text), "$options": "i"}
    if errors:
        raise InvalidInput("Invalid filter", errors)
    return query


MAX_PAGES_READ = 200
"""List pages one request reads at most: a filter few campaigns match stops there, with a
cursor (4,000 campaigns)."""
PAGES_BEFORE_MATCHES = 4
"""List pages read at most before a filter of pushed-down equalities reads its matches
instead; it does so at once when, at the yield of the pages read so far, filling the page
would take more list pages than that."""
PUSHED = frozenset({"status", "type"})
"""Filter fields whose single values every server answers from an index (FerretDB pushes them
down): reading their matches costs in proportion to the matches."""
MATCHES_READ_MOST = 200
"""A status filter with at most this many matches has a numbered page read from them at once,
whatever the page."""
WALK_ROWS_PER_DECODE = 8
"""Campaign rows a walk of list pages has the database check in the time FerretDB decodes one
match (docs/performance.md#numbered-campaign-pages-and-the-schedule-date-order)."""
LIST_PAGES_PER_READ = 16
"""List pages a walk reads in one command at most."""


async def list_campaigns(
    tenant: Tenant,
    settings: Settings,
    *,
    filter: CampaignFilter | None = None,
    order: CampaignOrder | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Campaign]:
    """Returns one page of campaigns in `order` (newest first by default).

    In creation order (either way), filtered or not, it walks the campaigns' list pages
    (`services.storage.positions`) with the filter added to each page's equality read, so a
    page costs the same at any number of campaigns; on FerretDB a sort reads all of the
    organization's matching campaigns. A filter of status and type equalities that would take
    more than `PAGES_BEFORE_MATCHES` list pages to fill the page reads its matches from there on
    (one read per status, merged): the page is full whenever enough campaigns match. Other
    filters stop after `MAX_PAGES_READ` list pages with a cursor that resumes there. By
    schedule date, the campaigns are read a schedule bucket at a time (`_by_schedule`).
    """
    order = order or CampaignOrder()
    size = page_size(first)
    query = campaign_query(filter)
    descending = order.direction.value == "desc"
    if order.field == CampaignOrderField.CREATED_AT:
        return await _by_position(tenant, settings, query, size, after, descending)
    return await _by_schedule(tenant, settings, query, size, after, descending)


ScheduleKey = tuple[int, datetime, ObjectId]
"""A campaign's place in schedule-date order: its bucket, its date (the earliest for none)
and its id."""
EARLIEST = datetime.min.replace(tzinfo=UTC)
FROM_START = "*"
"""A cursor's date part meaning "from the start of this bucket" (a read limit stopped there)."""


def _schedule_key(campaign: Campaign) -> ScheduleKey:
    when = campaign.scheduleDate
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    bucket = campaign.scheduleBucket
    if bucket is None:
        bucket = buckets.bucket_of(campaign.scheduleDate, campaign.page)
    assert campaign.id is not None
    return bucket, when or EARLIEST, campaign.id


def _schedule_cursor_value(key: ScheduleKey) -> str:
    bucket, when, _ = key
    return f"{bucket}|{'' if when == EARLIEST else when.isoformat()}"


def _schedule_start(cursors: Cursors, after: str, descending: bool) -> tuple[ScheduleKey, bool]:
    """The key a cursor names, and whether that key itself is to be read again (a resume at
    the start of a bucket)."""
    value, last_id = cursors.decode(after)
    try:
        bucket_text, _, date_text = str(value).partition("|")
        bucket = int(bucket_text)
        if date_text == FROM_START:
            edge = datetime.max.replace(tzinfo=UTC) if descending else EARLIEST
            return (bucket, edge, last_id), True
        when = datetime.fromisoformat(date_text) if date_text else EARLIEST
    except ValueError:
        raise InvalidInput(
            "Invalid cursor", [FieldError(("after",), "INVALID_CURSOR", "Bad cursor")]
        ) from None
    return (bucket, when if when.tzinfo else when.replace(tzinfo=UTC), last_id), False


async def _by_schedule(
    tenant: Tenant,
    settings: Settings,
    query: dict[str, Any],
    size: int,
    after: str | None,
    descending: bool,
) -> Page[Campaign]:
    """Campaigns by `(scheduleDate, _id)`, those without a date first when ascending and last
    when descending, read one schedule bucket at a time (`services.storage.buckets`): a
    day's campaigns, or a list page's without a date, by equality, put in order in memory.

    On MongoDB `{organizationId, scheduleDate, _id}` with a limit would read only the page, but
    on FerretDB that query reads and sorts every campaign of the organization; a bucket read is
    an index equality on both. A filter is added to each bucket's read; one few campaigns match
    stops after `MAX_PAGES_READ` buckets with a cursor that resumes at the next.
    """
    cursors = Cursors(settings, f"campaigns:schedule:{'desc' if descending else 'asc'}")
    start: ScheduleKey | None = None
    inclusive = False
    if after is not None:
        start, inclusive = _schedule_start(cursors, after, descending)

    def beyond(key: ScheduleKey, bound: ScheduleKey) -> bool:
        if inclusive:
            return key <= bound if descending else key >= bound
        return key < bound if descending else key > bound

    found: list[Campaign] = []
    resume = None
    read = 0
    async for bucket in buckets.walk(
        tenant, descending=descending, start=None if start is None else start[0]
    ):
        if len(found) > size:
            break
        if read == MAX_PAGES_READ:
            edge = ObjectId("f" * 24 if descending else "0" * 24)
            resume = cursors.encode(f"{bucket}|{FROM_START}", edge)
            break
        rows = await tenant.find_all(Campaign, {**query, "scheduleBucket": bucket})
        read += 1
        keyed = sorted(((_schedule_key(c), c) for c in rows), key=lambda kc: kc[0])
        if descending:
            keyed.reverse()
        if start is not None and bucket == start[0]:
            keyed = [(k, c) for k, c in keyed if beyond(k, start)]
        found += [c for _, c in keyed]
    items = found[:size]
    await with_live_stats(tenant, items)

    def position(campaign: Campaign) -> tuple[object, Any]:
        key = _schedule_key(campaign)
        return _schedule_cursor_value(key), key[2]

    return Page(
        items=items,
        cursors=LazyCursors(cursors, items, position),
        has_next=len(found) > size or (resume is not None and len(found) <= size),
        resume=resume if len(found) <= size else None,
    )


async def _by_position(
    tenant: Tenant,
    settings: Settings,
    query: dict[str, Any],
    size: int,
    after: str | None,
    descending: bool,
) -> Page[Campaign]:
    """Campaigns in list order (by page, then by id within a page: ids grow with time), newest
    or oldest first, matching `query`."""
    cursors = Cursors(settings, f"campaigns:page:{'desc' if descending else 'asc'}")
    last = await slots.CAMPAIGNS.last(tenant) // positions.CAMPAIGNS_PER_PAGE
    page_number = last if descending else 0
    last_id: ObjectId | None = None
    if after is not None:
        value, last_id = cursors.decode(after)
        if not isinstance(value, int):
            raise InvalidInput("Invalid cursor", [FieldError(("after",), "INVALID_CURSOR", "")])
        page_number = value
    step = -1 if descending else 1

    def listed(page: int) -> bool:
        return 0 <= page <= last

    def beyond(campaign: Campaign, bound: ObjectId) -> bool:
        assert campaign.id is not None
        return campaign.id < bound if descending else campaign.id > bound

    direct = bool(query) and all(
        field in PUSHED and (not isinstance(value, dict) or field == "status")
        for field, value in query.items()
    )
    budget = PAGES_BEFORE_MATCHES if direct else MAX_PAGES_READ
    found: list[Campaign] = []
    read = 0
    while listed(page_number) and len(found) <= size and read < budget:
        rows = await tenant.find_all(Campaign, {**query, "page": page_number})
        rows.sort(key=lambda c: c.id or ObjectId("0" * 24), reverse=descending)
        if last_id is not None:
            rows = [c for c in rows if beyond(c, last_id)]
            last_id = None
        found.extend(rows)
        page_number += step
        read += 1
        if direct and len(found) * PAGES_BEFORE_MATCHES < (size + 1) * read:
            break  # at this yield the page would take more list pages than that: sparse
    if direct and listed(page_number) and len(found) <= size:
        found += await _matches_from(tenant, query, page_number, descending, size + 1 - len(found))
        page_number = -1
    items = found[:size]
    await with_live_stats(tenant, items)
    more = len(found) > size or listed(page_number)
    resume = None
    if more and len(found) <= size:  # stopped by the read limit: resume at the next page
        resume = cursors.encode(page_number, ObjectId("f" * 24 if descending else "0" * 24))
    return Page(
        items=items,
        cursors=LazyCursors(cursors, items, lambda c: (c.page or 0, c.id)),
        has_next=more,
        resume=resume,
    )


async def _matches_from(
    tenant: Tenant, query: dict[str, Any], page: int, descending: bool, limit: int
) -> list[Campaign]:
    """The campaigns matching `query` from list page `page` on, in list order: one read per
    status asked for (each an equality the server answers from an index), merged."""
    each: list[str | None] = [*_statuses(query)] if "status" in query else [None]
    direction = -1 if descending else 1
    start = {"page": {"$lte": page} if descending else {"$gte": page}}
    found: list[Campaign] = []
    for status in each:
        narrowed = {**query, **start} | ({} if status is None else {"status": status})
        found += await tenant.find_all(
            Campaign, narrowed, sort=[("page", direction), ("_id", direction)], limit=limit
        )
    found.sort(key=lambda c: (c.page or 0, c.id or ObjectId("0" * 24)), reverse=descending)
    return found[:limit]


async def count_campaigns(tenant: Tenant, filter: CampaignFilter | None = None) -> int:
    """Counts the campaigns a filter matches: the organization's running total without a
    filter, a count of the matches with one."""
    return await _count(tenant, campaign_query(filter))


async def _count(tenant: Tenant, query: dict[str, Any]) -> int:
    """The running total without a filter or with a status filter alone; a count otherwise."""
    if not query:
        return await tallies.total(tenant, tallies.CAMPAIGNS)
    if query.keys() == {"status"}:
        kinds = [tallies.campaigns_in(status) for status in _statuses(query)]
        totals = await asyncio.gather(*(tallies.total(tenant, kind) for kind in kinds))
        # A campaign started before its creation's entry lands is out of its status first.
        return sum(max(0, n) for n in totals)
    return await tenant.count(Campaign, query)


def _statuses(query: dict[str, Any]) -> list[str]:
    """The statuses a query's status condition names, each once."""
    statuses = query["status"]
    return list(dict.fromkeys(statuses["$in"] if isinstance(statuses, dict) else [statuses]))


async def list_campaigns_by_page(
    tenant: Tenant, filter: CampaignFilter | None, *, page: int, limit: int
) -> tuple[list[Campaign], int]:
    """Returns numbered page `page` (from 1) of `limit` campaigns, newest first (by list
    number: creation order), and the total: the legacy REST listing's shape.

    Unfiltered, the page's list numbers are found from the gap records above them
    (`services.storage.slots`) and read by list page, so it costs the same at any number of
    campaigns and nearly the same at any depth. Filtered by status alone, the total is the
    statuses' running totals, and the page is read from the status's matches when they are
    few or the page is deep among them (on FerretDB that read decodes every match), else by
    walking the list pages from the newest: that costs the page's depth, not the
    organization's campaigns. A status with other filters reads the status's matches with
    them; other filters walk the list pages.
    """
    query = campaign_query(filter, at=())
    total = await _count(tenant, query)
    skip = (page - 1) * limit
    if skip >= total:
        return [], total  # past the end (and never a skip over MongoDB's 64-bit integers)
    if not query:
        found = await _numbered(tenant, skip, limit)
    elif "status" in query and (
        query.keys() != {"status"} or await _matches_are_cheaper(tenant, total, skip + limit)
    ):
        found = await _numbered_matches(tenant, query, skip, limit)
    else:
        found = await _numbered_walk(tenant, query, skip, limit)
    await with_live_stats(tenant, found)
    return found, total


async def _numbered(tenant: Tenant, skip: int, limit: int) -> list[Campaign]:
    """The campaigns at ranks `[skip, skip + limit)`, newest first: their numbers, then the
    list pages that hold them, by equality."""
    numbers = await slots.CAMPAIGNS.newest(tenant, skip, limit)
    wanted = set(numbers)
    per_page = positions.CAMPAIGNS_PER_PAGE
    pages = sorted({n // per_page for n in numbers}, reverse=True)
    rows = await asyncio.gather(*(tenant.find_all(Campaign, {"page": p}) for p in pages))
    by_number = {c.listSeq: c for page in rows for c in page if c.listSeq in wanted}
    return [by_number[n] for n in numbers if n in by_number]


async def _matches_are_cheaper(tenant: Tenant, matches: int, wanted: int) -> bool:
    """Whether reading a status filter's `matches` (FerretDB decodes each) costs less than
    walking list pages down to rank `wanted`, which decodes the `wanted` matches above it and
    has the database check about `wanted` times the organization's campaigns over the
    matches: rows it rejects by status, `WALK_ROWS_PER_DECODE` of them the cost of a decode."""
    if matches <= MATCHES_READ_MOST:
        return True
    campaigns = await tallies.total(tenant, tallies.CAMPAIGNS)
    walk = wanted * (campaigns + WALK_ROWS_PER_DECODE * matches)
    return walk >= WALK_ROWS_PER_DECODE * matches * matches


async def _numbered_matches(
    tenant: Tenant, query: dict[str, Any], skip: int, limit: int
) -> list[Campaign]:
    """Ranks `[skip, skip + limit)` of a status filter's matches, newest first: one read per
    status (an equality each, which FerretDB pushes down), merged."""
    found: list[Campaign] = []
    for status in _statuses(query):
        found += await tenant.find_all(
            Campaign, {**query, "status": status}, sort=[("listSeq", -1)], limit=skip + limit
        )
    found.sort(key=lambda c: c.listSeq or 0, reverse=True)
    return found[skip : skip + limit]


async def _numbered_walk(
    tenant: Tenant, query: dict[str, Any], skip: int, limit: int
) -> list[Campaign]:
    """Ranks `[skip, skip + limit)` of a filter's matches: list pages from the newest, read
    with the filter added, until the page is filled; one page first, then twice as many per
    read up to `LIST_PAGES_PER_READ` (an `$in` of page numbers)."""
    page_number = await slots.CAMPAIGNS.last(tenant) // positions.CAMPAIGNS_PER_PAGE
    found: list[Campaign] = []
    width = 1
    while page_number >= 0 and len(found) < skip + limit:
        pages = list(range(page_number, max(page_number - width, -1), -1))
        rows = await tenant.find_all(Campaign, {**query, "page": one_of(pages)})
        rows.sort(key=lambda c: c.listSeq or 0, reverse=True)
        found += rows
        page_number -= len(pages)
        width = min(width * 2, LIST_PAGES_PER_READ)
    return found[skip : skip + limit]


async def recipient_contact_ids(tenant: Tenant, campaign_id: PydanticObjectId) -> list[str]:
    """Returns every recipient's contact id in recipient order (the legacy `userIds`)."""
    cursor = tenant.raw_find(Recipient, {"campaignId": campaign_id}, {"contactId": 1, "seq": 1})
    rows = [(doc.get("seq", 0), str(doc["contactId"])) async for doc in cursor]
    rows.sort()
    return [contact_id for _, contact_id in rows]


@dataclass(frozen=True)
class RecipientsPage:
    """One page of one campaign's recipients."""

    campaign_id: PydanticObjectId
    page: Page[RecipientRow]
    total: int | None
    """How many recipients the campaign has, when no status filter narrowed the page."""


def recipient_cursors(settings: Settings, campaign_id: ObjectId, status: str | None) -> Cursors:
    return Cursors(settings, f"recipients:{campaign_id}:{status or '*'}")


async def recipients_page(
    tenant: Tenant,
    settings: Settings,
    campaign: Campaign,
    *,
    first: int | None = None,
    after: str | None = None,
    status: str | None = None,
) -> RecipientsPage:
    """Returns recipients in order, walking batches by equality (no sort of the campaign)."""
    assert campaign.id is not None
    size = page_size(first)
    status_value = _status_filter(status)
    cursors = recipient_cursors(settings, campaign.id, status_value)
    after_seq = -1
    if after is not None:
        value, _ = cursors.decode(after)
        if not isinstance(value, int):
            raise InvalidInput(
                "Invalid cursor", [FieldError(("after",), "INVALID_CURSOR", "Bad cursor")]
            )
        after_seq = value
    found: list[RecipientRow] = []
    if status_value is not None:
        query = {"campaignId": campaign.id, "status": status_value, "seq": {"$gt": after_seq}}
        found.extend(await tenant.raw_find(Recipient, query).sort("seq").limit(size + 1).to_list())
    else:
        last_batch = (campaign.nextSeq - 1) // RECIPIENT_BATCH
        batch = (after_seq + 1) // RECIPIENT_BATCH
        while len(found) <= size and batch <= last_batch:
            query = {"campaignId": campaign.id, "batch": batch, "seq": {"$gt": after_seq}}
            found.extend(sorted(await tenant.raw_find(Recipient, query).to_list(), key=_seq))
            batch += 1
    items = found[:size]
    page = Page(
        items=items,
        cursors=LazyCursors(cursors, items, _position),
        has_next=len(found) > size,
    )
    total = campaign.stats.total if status_value is None else None
    return RecipientsPage(campaign.id, page, total)


def _seq(row: RecipientRow) -> int:
    return int(row["seq"])


def _position(row: RecipientRow) -> tuple[int, ObjectId]:
    return int(row["seq"]), row["_id"]


async def recipients_by_page(
    tenant: Tenant, campaign: Campaign, *, page: int, limit: int
) -> list[RecipientRow]:
    """Returns numbered page `page` (from 1): the recipients at positions
    `[(page - 1) * limit, page * limit)`, read batch by batch (legacy REST). Removing
    recipients leaves gaps, so such pages can be shorter than `limit`."""
    start = (page - 1) * limit
    end = min(start + limit, campaign.nextSeq)
    found: list[RecipientRow] = []
    for batch in range(start // RECIPIENT_BATCH, (end - 1) // RECIPIENT_BATCH + 1):
        query = {"campaignId": campaign.id, "batch": batch, "seq": {"$gte": start, "$lt": end}}
        found.extend(sorted(await tenant.raw_find(Recipient, query).to_list(), key=_seq))
    return found


async def count_recipients(tenant: Tenant, campaign: Campaign, status: str | None) -> int:
    """Counts a campaign's recipients in one status (all of them: `stats.total`)."""
    if status is None:
        return campaign.stats.total
    return await tenant.count(
        Recipient, {"campaignId": campaign.id, "status": _status_filter(status)}
    )


async def first_recipients(
    tenant: Tenant, settings: Settings, campaigns: Sequence[Campaign], first: int | None
) -> list[RecipientsPage]:
    """Returns the first page of recipients of many campaigns (a list screen's campaigns).

    Each campaign's start is read with an equality on `campaignId` plus `head: true` (its first
    `HEAD_SIZE` recipients) for short pages or `batch: 0` otherwise, and `seq` up to the page
    size. `Tenant.raw_find_in` reads a page's campaigns (at most `MAX_PAGE`) by `$in`, so the
    cost follows the page, not the organization's campaigns. A campaign whose start has
    gaps (recipients removed) is completed by `recipients_page`.
    """
    size = page_size(first)
    ids = [c.id for c in campaigns if c.id is not None]
    by_campaign: dict[ObjectId, list[RecipientRow]] = defaultdict(list)
    if ids and size < RECIPIENT_BATCH:
        narrow: dict[str, Any] = {"head": True} if size < HEAD_SIZE else {"batch": 0}
        where = {**narrow, "seq": {"$lte": size}}
        for row in await tenant.raw_find_in(Recipient, "campaignId", ids, where=where):
            by_campaign[row["campaignId"]].append(row)
    pages: list[RecipientsPage] = []
    for campaign in campaigns:
        assert campaign.id is not None
        rows = sorted(by_campaign.get(campaign.id, []), key=_seq)
        wanted = min(size + 1, campaign.nextSeq)
        if size >= RECIPIENT_BATCH or len(rows) < wanted:
            pages.append(await recipients_page(tenant, settings, campaign, first=size))
            continue
        cursors = recipient_cursors(settings, campaign.id, None)
        items = rows[:size]
        pages.append(
            RecipientsPage(
                campaign.id,
                Page(
                    items=items,
                    cursors=LazyCursors(cursors, items, _position),
                    has_next=len(rows) > size,
                ),
                campaign.stats.total,
            )
        )
    return pages


async def campaign_history(tenant: Tenant, campaign: Campaign) -> list[Change]:
    """Returns the campaign's recorded changes, oldest first (creation is not among them)."""
    assert campaign.id is not None
    return await history.history(tenant, campaign.id)


def _status_filter(status: str | None) -> str | None:
    if status is None:
        return None
    errors: list[FieldError] = []
    value = _choice(RecipientStatus, status, ("status",), errors)
    if errors:
        raise InvalidInput("Invalid status", errors)
    return value


def _choice(
    kind: type[CampaignStatus] | type[CampaignType] | type[RecipientStatus],
    raw: str,
    path: Path,
    errors: list[FieldError],
) -> str:
    value = raw.strip().lower()
    allowed = [m.value for m in kind]
    if value not in allowed:
        errors.append(
            FieldError(path, "INVALID_CHOICE", f"'{raw}' is not one of {', '.join(allowed)}")
        )
    return value


def _range(
    query: dict[str, Any],
    field: str,
    after: str | None,
    before: str | None,
    after_path: Path,
    before_path: Path,
    errors: list[FieldError],
) -> None:
    bounds: dict[str, datetime] = {}
    start = parse_instant(after, after_path, errors)
    end = parse_instant(before, before_path, errors)
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    if bounds:
        query[field] = bounds
