"""The suppression list: numbers an organization must never text, whether contacts or not.

One document per organization and E.164 number, its `_id` `"<organizationId>:<phone>"`: an
import is a bulk unordered insert whose duplicates are simply numbers already on the list (no
read before the write, no two writers), a send checks its recipients by `_id` point lookups,
and the list pages by `_id` within the organization. Numbers are normalised as contacts' phones
are, so `(415) 555-0101` suppresses the contact `+14155550101`; a number that cannot be a phone
is reported per entry (`failedDetails`) and the others are still imported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bson import ObjectId
from pymongo.errors import BulkWriteError

from core.config import Settings
from core.errors import FieldError, InvalidInput, PayloadTooLarge
from models.campaign import FailedDetail
from models.compliance import Suppression, suppression_id
from services.contacts.records import PhoneError, normalize_phone
from services.inputs import SuppressNumbersInput, UnsuppressNumbersInput
from services.storage.pages import Cursors, Page, page_size
from services.storage.tenancy import Tenant

DUPLICATE_KEY = 11000
MAX_NUMBERS = 100_000
"""Numbers one request may list (typed and CSV rows together)."""
MAX_REASON = 200
INSERT_CHUNK = 10_000
"""Documents per insert command: a 100,000-number import is ten commands."""
MAX_FAILED_DETAILS = 1000
PHONE_HEADERS = ("phonenumber", "phone", "mobile", "mobilenumber", "cell", "cellphone", "tel")
CURSOR_SCOPE = "suppressions:_id:asc"


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
    """Adds the numbers to the list in bulk; one already there is counted, not an error."""
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
    phones = _normalised(entries, settings.default_phone_region, failed)
    for start in range(0, len(phones), INSERT_CHUNK):
        chunk = phones[start : start + INSERT_CHUNK]
        documents = [
            {
                "_id": suppression_id(tenant.organization_id, phone),
                "phoneNumber": phone,
                "reason": reason,
            }
            for phone in chunk
        ]
        try:
            await tenant.raw_insert_many(Suppression, documents, ordered=False)
        except BulkWriteError as exc:
            errors_found = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors_found):
                raise
            result.alreadySuppressed += len(errors_found)
            result.added += len(chunk) - len(errors_found)
        else:
            result.added += len(chunk)
    result.failedDetails = failed[:MAX_FAILED_DETAILS]
    result.failedTotal = len(failed)
    return result


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
    return UnsuppressResult(
        removed=removed,
        notSuppressed=len(ids) - removed,
        failedDetails=failed[:MAX_FAILED_DETAILS],
        failedTotal=len(failed),
    )


async def suppressed_among(tenant: Tenant, phones: Iterable[str]) -> set[str]:
    """The numbers of `phones` on the organization's list: point lookups by `_id` (for a long
    list when the organization's whole list is shorter: one read of that list instead)."""
    wanted = list(dict.fromkeys(phones))
    if not wanted:
        return set()
    if not await tenant.raw_find(Suppression, {}, {"_id": 1}).limit(1).to_list():
        return set()  # most organizations list nothing: one read instead of one per phone
    if len(wanted) > 100 and await tenant.count(Suppression) <= len(wanted):
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


async def suppressed_page(
    tenant: Tenant,
    settings: Settings,
    *,
    first: int | None,
    after: str | None,
    search: str | None,
    size_at: tuple[str | int, ...] = ("first",),
) -> Page[SuppressedNumber]:
    """A page of the list in number order; `search` is a prefix of the number. Read as a
    range of `_id` inside the organization, so the index serves the filter and the order."""
    size = page_size(first, size_at)
    cursors = Cursors(settings, CURSOR_SCOPE)
    org = str(tenant.organization_id)
    prefix = f"{org}:{_search_prefix(search)}"
    lower: dict[str, str] = {"$gte": prefix}
    if after:
        phone, owner = cursors.decode(after)
        if owner != tenant.organization_id or not isinstance(phone, str):
            message = "This cursor is invalid, or belongs to another ordering"
            raise InvalidInput(message, [FieldError(("after",), "INVALID_CURSOR", message)])
        lower = {"$gt": max(prefix, f"{org}:{phone}")}
    query: dict[str, object] = {"_id": {**lower, "$lt": prefix + "\uffff"}}
    whole = _whole_number(search)
    if whole is not None:
        # Is this number on the list? One read by primary key on every server (a range is not
        # pushed down on FerretDB: a prefix search reads the organization's list).
        query = {"_id": suppression_id(org, whole)} if not after else {"_id": None}
    rows = (
        await tenant.raw_find(Suppression, query, {"phoneNumber": 1, "reason": 1, "createdAt": 1})
        .sort([("_id", 1)])
        .limit(size + 1)
        .to_list()
    )
    items = [
        SuppressedNumber(row["phoneNumber"], row.get("reason"), row["createdAt"])
        for row in rows[:size]
    ]
    owner_id = ObjectId(str(tenant.organization_id))
    return Page(
        items=items,
        cursors=[cursors.encode(item.phoneNumber, owner_id) for item in items],
        has_next=len(rows) > size,
    )


async def count_suppressed(tenant: Tenant, search: str | None = None) -> int:
    """How many numbers the list holds (starting with `search`)."""
    if not search:
        return await tenant.count(Suppression)
    whole = _whole_number(search)
    if whole is not None:
        return await tenant.count(
            Suppression, {"_id": suppression_id(tenant.organization_id, whole)}
        )
    prefix = f"{tenant.organization_id}:{_search_prefix(search)}"
    return await tenant.count(Suppression, {"_id": {"$gte": prefix, "$lt": prefix + "\uffff"}})
