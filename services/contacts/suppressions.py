"""The suppression list: numbers an organization must never text, whether contacts or not.

One document per organization and E.164 number, its `_id` `"<organizationId>:<phone>"`: an
import is a bulk unordered insert whose duplicates are simply numbers already on the list (no
read before the write, no two writers), and a send checks its recipients by `_id`. The list
is read by equality only (FerretDB pushes no range or sort down): each number
carries the list page its import claimed and a prefix key, so a page of the list or of a
search costs the same whatever the list's size (`suppressed_page`). Numbers are normalised as
contacts' phones are, so `(415) 555-0101` suppresses the contact `+14155550101`; a number that
cannot be a phone is reported per entry (`failedDetails`) and the others are still imported.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from core.config import Settings
from core.errors import FieldError, InvalidInput, PayloadTooLarge
from models.campaign import FailedDetail
from models.compliance import (
    PREFIX_KEY_LENGTH,
    Suppression,
    SuppressionPage,
    prefix_key,
    suppression_id,
)
from services.contacts.records import PhoneError, normalize_phone
from services.inputs import SuppressNumbersInput, UnsuppressNumbersInput
from services.storage import positions, tallies
from services.storage.pages import Cursors, LazyCursors, Page, page_size
from services.storage.tenancy import DUPLICATE_KEY, Tenant

MAX_NUMBERS = 100_000
"""Numbers one request may list (typed and CSV rows together)."""
MAX_REASON = 200
INSERT_CHUNK = 10_000
"""Documents per insert command: a 100,000-number import is ten commands."""
MAX_FAILED_DETAILS = 1000
PHONE_HEADERS = ("phonenumber", "phone", "mobile", "mobilenumber", "cell", "cellphone", "tel")
LIST_SCOPE = "suppressions:page"
NUMBER_SCOPE = "suppressions:number"
BUCKET_SEARCH_FROM = 8
"""Prefix length (`+` and 7 digits) from which a search reads prefix-key buckets: at most
111 equality reads (100 for North American numbers; `_bucket_keys`). A shorter prefix scans
the list's pages."""
MAX_PAGES_READ = 50
"""List pages one request reads at most (5,000 numbers): a short prefix few numbers match stops
there, with a cursor that resumes after them."""
MAX_WAVE = 8
"""Reads one request runs at once."""
FIELDS = {"phoneNumber": 1, "reason": 1, "createdAt": 1}


@dataclass
class SuppressResult:
    """What an import did: numbers added, numbers already on the list, and entries refused."""

    added: int = 0
    alreadySuppressed: int = 0
    failedDetails: list[FailedDetail] = field(default_factory=list)
    failedTotal: int = 0


@dataclass
class UnsuppressResult:
    removed: int = 0
    notSuppressed: int = 0
    failedDetails: list[FailedDetail] = field(default_factory=list)
    failedTotal: int = 0


@dataclass(frozen=True)
class SuppressedNumber:
    phoneNumber: str
    reason: str | None
    createdAt: datetime


def _too_many(count: int) -> PayloadTooLarge:
    message = f"The request lists {count} numbers; at most {MAX_NUMBERS} per request"
    return PayloadTooLarge(message, [FieldError(("phoneNumbers",), "TOO_MANY_NUMBERS", message)])


def _csv_numbers(text: str) -> Iterable[tuple[int, str]]:
    """`(spreadsheet row, raw number)` of each data row: the phone column when the first row
    names one, else the first column of every row."""
    reader = csv.reader(io.StringIO(text))
    column = 0
    first = True
    for row in reader:
        if first:
            first = False
            squashed = ["".join(ch for ch in cell.lower() if ch.isalnum()) for cell in row]
            named = [i for i, cell in enumerate(squashed) if cell in PHONE_HEADERS]
            if named:
                column = named[0]
                continue
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        yield reader.line_num, row[column] if column < len(row) else ""


def _normalised(
    entries: Iterable[tuple[str, int, str]], region: str, failed: list[FailedDetail]
) -> list[str]:
    """The distinct E.164 numbers of `(source, index, raw)` entries, in order; the others go to
    `failed`."""
    phones: dict[str, None] = {}
    for source, index, raw in entries:
        try:
            phones[normalize_phone(raw, region)] = None
        except PhoneError as exc:
            failed.append(
                FailedDetail(
                    source=source,
                    index=index,
                    field="phoneNumber" if source == "phoneNumbers" else None,
                    value=raw,
                    code=exc.code,
                    message=exc.message,
                )
            )
    return list(phones)


def _entries(phone_numbers: Sequence[str], csv_text: str | None) -> list[tuple[str, int, str]]:
    entries = [("phoneNumbers", i, raw) for i, raw in enumerate(phone_numbers)]
    if len(entries) > MAX_NUMBERS:
        raise _too_many(len(entries))
    if csv_text:
        try:
            for row, raw in _csv_numbers(csv_text):
                entries.append(("csv", row, raw))
                if len(entries) > MAX_NUMBERS:
                    raise _too_many(len(entries))
        except csv.Error as exc:
            message = f"The CSV cannot be read: {exc}"
            raise InvalidInput(message, [FieldError(("csv",), "INVALID_CSV", message)]) from None
    return entries


async def suppress_numbers(
    tenant: Tenant, data: SuppressNumbersInput, settings: Settings
) -> SuppressResult:
    """Adds the numbers to the list in bulk; one already there is counted, not an error.

    Each import's numbers take list pages claimed for them before the insert, in number
    order, with their prefix keys; a page that receives nothing (its numbers were all on the
    list already) is marked so that readers jump it (`_mark_empty_runs`)."""
    reason = (data.reason or "").strip() or None
    errors: list[FieldError] = []
    if reason is not None and len(reason) > MAX_REASON:
        message = f"At most {MAX_REASON} characters"
        errors.append(FieldError(("reason",), "TOO_LONG", message))
    if not data.phoneNumbers and not (data.csv or "").strip():
        message = "Give phoneNumbers or csv"
        errors.append(FieldError(("phoneNumbers",), "REQUIRED", message))
    if errors:
        raise InvalidInput("Invalid suppression list import", errors)
    entries = _entries(data.phoneNumbers, data.csv)
    result = SuppressResult()
    failed: list[FailedDetail] = []
    phones = sorted(_normalised(entries, settings.default_phone_region, failed))
    pages, claimed = (
        await positions.SUPPRESSIONS.pages_for(tenant, len(phones)) if phones else ([], False)
    )
    per_page = positions.SUPPRESSIONS_PER_PAGE
    landed: Counter[int] = Counter()
    for start in range(0, len(phones), INSERT_CHUNK):
        chunk = phones[start : start + INSERT_CHUNK]
        documents = [
            {
                "_id": suppression_id(tenant.organization_id, phone),
                "phoneNumber": phone,
                "reason": reason,
                "page": pages[(start + i) // per_page] if claimed else pages[0],
                "prefixKey": prefix_key(phone),
            }
            for i, phone in enumerate(chunk)
        ]
        refused: set[int] = set()
        try:
            await tenant.raw_insert_many(Suppression, documents, ordered=False)
        except BulkWriteError as exc:
            errors_found = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors_found):
                raise
            refused = {int(e["index"]) for e in errors_found}
        result.alreadySuppressed += len(refused)
        result.added += len(chunk) - len(refused)
        landed.update(
            pages[(start + i) // per_page] if claimed else pages[0]
            for i in range(len(chunk))
            if i not in refused
        )
    await tallies.add(tenant, tallies.SUPPRESSIONS, result.added)
    if claimed:
        await _mark_empty_runs(tenant, pages, landed)
    result.failedDetails = failed[:MAX_FAILED_DETAILS]
    result.failedTotal = len(failed)
    return result


async def _mark_empty_runs(tenant: Tenant, pages: Sequence[int], landed: Counter[int]) -> None:
    """Writes `skipTo` on the first claim of each run of at least two consecutive pages this
    import claimed and filled with nothing (a list imported again claims pages for numbers
    it already holds). Only this import writes its claims and their pages (small imports
    join only `shared` pages), so a page marked empty stays empty. Its last page is left
    unmarked all the same: it ends the run cheaply."""
    runs: list[list[int]] = []
    for page in pages[:-1]:
        if landed[page]:
            continue
        if runs and runs[-1][-1] == page - 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    for run in runs:
        if len(run) > 1:
            await tenant.update_one(
                SuppressionPage,
                {"_id": positions.SUPPRESSIONS.claim_id(tenant, run[0])},
                {"$set": {"skipTo": run[-1] + 1}},
            )


async def unsuppress_numbers(
    tenant: Tenant, data: UnsuppressNumbersInput, settings: Settings
) -> UnsuppressResult:
    """Takes the numbers off the list; one not on it is counted, not an error."""
    if not data.phoneNumbers:
        message = "Give phoneNumbers"
        raise InvalidInput(message, [FieldError(("phoneNumbers",), "REQUIRED", message)])
    entries = _entries(data.phoneNumbers, None)
    failed: list[FailedDetail] = []
    phones = _normalised(entries, settings.default_phone_region, failed)
    ids = [suppression_id(tenant.organization_id, phone) for phone in phones]
    removed = await tenant.delete_in(Suppression, "_id", ids) if ids else 0
    await tallies.add(tenant, tallies.SUPPRESSIONS, -removed)
    return UnsuppressResult(
        removed=removed,
        notSuppressed=len(ids) - removed,
        failedDetails=failed[:MAX_FAILED_DETAILS],
        failedTotal=len(failed),
    )


async def suppressed_among(tenant: Tenant, phones: Iterable[str]) -> set[str]:
    """The numbers of `phones` on the organization's list, read by `_id` (for a long list
    when the organization's whole list is shorter: one read of that list instead)."""
    wanted = list(dict.fromkeys(phones))
    if not wanted:
        return set()
    if not await tenant.raw_find(Suppression, {}, {"_id": 1}).limit(1).to_list():
        return set()  # most organizations list nothing: one read instead of one per phone
    if len(wanted) > 100 and await tallies.total(tenant, tallies.SUPPRESSIONS) <= len(wanted):
        listed = {
            row["phoneNumber"] async for row in tenant.raw_find(Suppression, {}, {"phoneNumber": 1})
        }
        return listed.intersection(wanted)
    ids = [suppression_id(tenant.organization_id, phone) for phone in wanted]
    rows = await tenant.raw_find_in(Suppression, "_id", ids, {"phoneNumber": 1})
    return {row["phoneNumber"] for row in rows}


def _search_prefix(search: str | None) -> str:
    """The E.164 prefix a search names: its digits, `+` optional (`1415` finds +1415…)."""
    digits = "".join(ch for ch in search or "" if ch.isdigit())
    return f"+{digits}" if digits else "+"


def _whole_number(search: str | None) -> str | None:
    """The E.164 number a search names whole (`+14155550123`), if it does."""
    prefix = _search_prefix(search)
    if len(prefix) < 9:
        return None
    try:
        number = normalize_phone(prefix, "US")  # `+` makes the region irrelevant
    except PhoneError:
        return None
    return number if number == prefix else None


def _bucket_keys(prefix: str) -> list[str]:
    """The prefix keys that can hold a number starting with `prefix`, in number order: the
    prefix's own key when it is at least a key long; else every extension of it up to a
    key's length (shorter ones are whole numbers shorter than a key, stored under
    themselves). A key sorts before its extensions and after its smaller siblings' numbers,
    so reading the keys in this order reads the numbers in order."""
    if len(prefix) >= PREFIX_KEY_LENGTH:
        return [prefix[:PREFIX_KEY_LENGTH]]
    keys: list[str] = []
    # North American numbers are all `+1` and 10 digits: only keys of full length hold any.
    shortest = PREFIX_KEY_LENGTH if prefix.startswith("+1") else 0

    def walk(key: str) -> None:
        if len(key) >= shortest:
            keys.append(key)
        if len(key) < PREFIX_KEY_LENGTH:
            for digit in "0123456789":
                walk(key + digit)

    walk(prefix)
    return keys


def _invalid_cursor() -> InvalidInput:
    message = "This cursor is invalid, or belongs to another ordering"
    return InvalidInput(message, [FieldError(("after",), "INVALID_CURSOR", message)])


def _owner(tenant: Tenant) -> ObjectId:
    return ObjectId(str(tenant.organization_id))


def _cursor_value(cursors: Cursors, tenant: Tenant, after: str) -> str:
    """The position a cursor names; another organization's cursor is refused like a damaged
    one (it must not page someone else's list)."""
    value, owner = cursors.decode(after)
    if owner != _owner(tenant) or not isinstance(value, str):
        raise _invalid_cursor()
    return value


def _item(row: Mapping[str, Any]) -> SuppressedNumber:
    return SuppressedNumber(row["phoneNumber"], row.get("reason"), row["createdAt"])


async def suppressed_page(
    tenant: Tenant,
    settings: Settings,
    *,
    first: int | None,
    after: str | None,
    search: str | None,
    size_at: tuple[str | int, ...] = ("first",),
    max_pages: int = MAX_PAGES_READ,
) -> Page[SuppressedNumber]:
    """A page of the list; `search` is a prefix of the number (docs/sending.md, suppression list).

    Every read is an equality that both servers answer from an index, so a page costs the
    same at 1,000 numbers as at 100,000: a whole number is one read by key; a prefix of at
    least `BUCKET_SEARCH_FROM` characters reads its prefix keys' buckets in number order;
    the list, and a shorter prefix, read the list's numbered pages in order (a short prefix
    filters each page and stops after `max_pages` pages with a cursor)."""
    size = page_size(first, size_at)
    prefix = _search_prefix(search)
    whole = _whole_number(search)
    if whole is not None or len(prefix) >= BUCKET_SEARCH_FROM:
        cursors = Cursors(settings, NUMBER_SCOPE)
        after_phone = _cursor_value(cursors, tenant, after) if after else ""
        if whole is not None:
            rows = (
                []
                if after
                else await tenant.raw_find(
                    Suppression, {"_id": suppression_id(tenant.organization_id, whole)}, FIELDS
                ).to_list()
            )
        else:
            rows = await _bucket_rows(tenant, prefix, after_phone, size + 1)
        items = [_item(row) for row in rows[:size]]
        return Page(
            items=items,
            cursors=LazyCursors(cursors, items, lambda item: (item.phoneNumber, _owner(tenant))),
            has_next=len(rows) > size,
        )
    cursors = Cursors(settings, LIST_SCOPE)
    return await _list_page(tenant, cursors, size, after, prefix, max_pages)


async def _bucket_rows(
    tenant: Tenant, prefix: str, after_phone: str, wanted: int
) -> list[dict[str, Any]]:
    """Up to `wanted` numbers starting with `prefix` after `after_phone`, in number order:
    the buckets one equality each, a few at a time (1, 2, 4, then 8 at once), until enough."""
    keys = [
        key
        for key in _bucket_keys(prefix)
        if key > after_phone[: len(key)]
        or (len(key) == PREFIX_KEY_LENGTH and key == after_phone[:PREFIX_KEY_LENGTH])
    ]
    found: list[dict[str, Any]] = []
    wave, start = 1, 0
    while start < len(keys) and len(found) < wanted:
        batch = keys[start : start + wave]
        start += len(batch)
        read = await asyncio.gather(
            *(tenant.raw_find(Suppression, {"prefixKey": key}, FIELDS).to_list() for key in batch)
        )
        for rows in read:
            found += sorted(
                (
                    row
                    for row in rows
                    if row["phoneNumber"].startswith(prefix) and row["phoneNumber"] > after_phone
                ),
                key=lambda row: str(row["phoneNumber"]),
            )
        wave = min(wave * 2, MAX_WAVE)
    return found[:wanted]


async def _list_page(
    tenant: Tenant, cursors: Cursors, size: int, after: str | None, prefix: str, max_pages: int
) -> Page[SuppressedNumber]:
    """A page of the list in list order (by page, then number), the numbers starting with
    `prefix` (`+`: all), read one numbered page at a time (then 2, 4, up to 8 at once)."""
    start_page, after_phone = 0, ""
    if after:
        value = _cursor_value(cursors, tenant, after)
        page_text, _, after_phone = value.partition(":")
        if not page_text.isdigit():
            raise _invalid_cursor()
        start_page = int(page_text)
    last = await positions.SUPPRESSIONS.last_page(tenant)
    found: list[tuple[int, dict[str, Any]]] = []
    next_page, skip_until, read, wave = start_page, start_page, 0, 1
    while next_page <= last and len(found) <= size and read < max_pages:
        numbers = range(next_page, next_page + min(wave, last - next_page + 1, max_pages - read))
        pages = await asyncio.gather(
            *(tenant.raw_find(Suppression, {"page": p}, FIELDS).to_list() for p in numbers)
        )
        read += len(numbers)
        next_page = numbers[-1] + 1
        empty = [p for p, rows in zip(numbers, pages, strict=True) if not rows and p >= skip_until]
        jumps = await asyncio.gather(*(_skip_to(tenant, p) for p in empty))
        skips = dict(zip(empty, jumps, strict=True))
        for page, rows in zip(numbers, pages, strict=True):
            if page < skip_until or len(found) > size:
                continue
            if not rows:
                skip_until = max(skip_until, skips[page])
                continue
            rows.sort(key=lambda row: str(row["phoneNumber"]))
            found += [
                (page, row)
                for row in rows
                if row["phoneNumber"].startswith(prefix)
                and (page != start_page or row["phoneNumber"] > after_phone)
            ]
        next_page = max(next_page, skip_until)
        wave = min(wave * 2, MAX_WAVE)
    taken = found[:size]
    items = [_item(row) for _, row in taken]
    more = len(found) > size or next_page <= last
    resume = None
    if more and len(found) <= size:  # stopped by the read limit: resume at the next page
        resume = cursors.encode(f"{next_page}:", _owner(tenant))
    return Page(
        items=items,
        cursors=LazyCursors(
            cursors, taken, lambda entry: (f"{entry[0]}:{entry[1]['phoneNumber']}", _owner(tenant))
        ),
        has_next=more,
        resume=resume,
    )


async def _skip_to(tenant: Tenant, page: int) -> int:
    """Where the run of empty pages starting at `page` ends (its claim's `skipTo`), or `page`
    when none is recorded."""
    rows = await tenant.raw_find(
        SuppressionPage, {"_id": positions.SUPPRESSIONS.claim_id(tenant, page)}, {"skipTo": 1}
    ).to_list()
    skip = rows[0].get("skipTo") if rows else None
    return int(skip) if skip is not None else page


async def count_suppressed(tenant: Tenant, search: str | None = None) -> int:
    """How many numbers the list holds (starting with `search`): the running total; a whole
    number's key; a long prefix's buckets; a short prefix counts the list."""
    prefix = _search_prefix(search)
    if prefix == "+":
        return await tallies.total(tenant, tallies.SUPPRESSIONS)
    whole = _whole_number(search)
    if whole is not None:
        return await tenant.count(
            Suppression, {"_id": suppression_id(tenant.organization_id, whole)}
        )
    if len(prefix) >= BUCKET_SEARCH_FROM:
        if len(prefix) > PREFIX_KEY_LENGTH:
            rows = await tenant.raw_find(
                Suppression, {"prefixKey": prefix[:PREFIX_KEY_LENGTH]}, {"phoneNumber": 1}
            ).to_list()
            return sum(1 for row in rows if row["phoneNumber"].startswith(prefix))
        gate = asyncio.Semaphore(MAX_WAVE)

        async def count(key: str) -> int:
            async with gate:
                return await tenant.count(Suppression, {"prefixKey": key})

        return sum(await asyncio.gather(*map(count, _bucket_keys(prefix))))
    keys = {"$gte": prefix, "$lt": prefix + "\uffff"}  # a key starts as its number does
    return await tenant.count(Suppression, {"prefixKey": keys})
