"""Who a new campaign goes to: every recipient source resolved, deduplicated and checked.

Sources, in the order recipients are listed: `newContacts`, `rawCsvData` rows,
`selectedExistingContacts`, legacy `userIds`, then `segmentation`. A contact reached twice is
one recipient. A part of the input that cannot be used becomes a `FailedDetail`; it never sinks
the request.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, PayloadTooLarge
from models.campaign import FailedDetail
from models.recipient import HEAD_SIZE, RECIPIENT_BATCH, RecipientStatus
from services.campaigns.templates import SmsCost, Template, TemplateError, sms_cost
from services.contacts import csvdata
from services.contacts.queries import contact_conditions
from services.contacts.records import (
    ContactDraft,
    ContactRef,
    PhoneError,
    contacts_by_ids,
    contacts_by_phones,
    contacts_matching,
    count_matching,
    normalize_phone,
)
from services.dates import parse_instant
from services.inputs import CreateCampaignInput, Segmentation
from services.organizations.footer import with_footer
from services.storage.tenancy import Tenant

MAX_SEGMENTS = 10

ID_SOURCES = ("selectedExistingContacts", "userIds")
SINGLE_PROBES = 3
"""Typed-in phones probed one by one first: usually the first new phone settles it."""
PROBE_BATCH = 5000


@dataclass
class Sources:
    """Everything the input asks for, parsed but not yet looked up or written."""

    drafts: list[tuple[str, int, ContactDraft]] = field(default_factory=list)
    ids: list[tuple[str, int, ObjectId]] = field(default_factory=list)
    segment_query: dict[str, Any] | None = None
    failed: list[FailedDetail] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)


@dataclass
class Found:
    """What the database already holds for the sources (read before any write)."""

    by_id: dict[ObjectId, ContactRef]
    segment: list[ContactRef]


def parse_sources(
    input: CreateCampaignInput, settings: Settings, errors: list[FieldError]
) -> Sources:
    """Parses every source; whole-request problems go to `errors`, per-entry ones to `failed`."""
    _check_entry_count(input, settings)
    sources = Sources()
    for i, contact in enumerate(input.newContacts):
        _add_draft(sources, "newContacts", i, contact.model_dump(), settings)
    if input.rawCsvData is not None:
        try:
            _add_csv(sources, input, settings)
        except PayloadTooLarge:
            raise
        except InvalidInput as exc:
            errors.extend(exc.errors)
    for i, ref in enumerate(input.selectedExistingContacts):
        oid = object_id(ref.id, ("selectedExistingContacts", i, "_id"), errors)
        if oid is not None:
            sources.ids.append(("selectedExistingContacts", i, oid))
    for i, raw in enumerate(input.userIds):
        oid = object_id(raw, ("userIds", i), errors)
        if oid is not None:
            sources.ids.append(("userIds", i, oid))
    if input.segmentation is not None:
        sources.segment_query = _segment_query(input.segmentation, errors)
    return sources


def object_id(raw: str, path: tuple[str | int, ...], errors: list[FieldError]) -> ObjectId | None:
    """Parses a 24-hex id, reporting a malformed one as a field error."""
    text = raw.strip()
    if ObjectId.is_valid(text):
        return ObjectId(text)
    errors.append(FieldError(path, "INVALID_ID", f"'{raw}' is not an id (24 hex characters)"))
    return None


def _check_entry_count(input: CreateCampaignInput, settings: Settings) -> None:
    """Bounds the work (and the failure report) before a single phone is parsed.

    The exact limit applies to deduplicated recipients later; raw entries may be up to twice
    that, since legacy callers send the same ids in two lists. CSV text is counted by the
    parser as it reads (a quoted cell may span lines).
    """
    csv_rows = len(input.rawCsvData.rows or []) if input.rawCsvData is not None else 0
    entries = (
        len(input.newContacts) + len(input.selectedExistingContacts) + len(input.userIds) + csv_rows
    )
    if entries > 2 * settings.max_recipients:
        raise PayloadTooLarge(
            f"The request lists {entries} contacts; at most {2 * settings.max_recipients} "
            f"entries and {settings.max_recipients} distinct recipients are accepted",
            [
                FieldError(
                    (),
                    "TOO_MANY_RECIPIENTS",
                    f"At most {settings.max_recipients} recipients per campaign",
                )
            ],
        )


def _add_draft(
    sources: Sources, source: str, index: int, values: dict[str, str | None], settings: Settings
) -> None:
    raw_phone = values.get("phoneNumber")
    try:
        phone = normalize_phone(raw_phone, settings.default_phone_region)
    except PhoneError as exc:
        sources.failed.append(
            FailedDetail(
                source=source,
                index=index,
                field="phoneNumber",
                value=raw_phone,
                code=exc.code,
                message=exc.message,
            )
        )
        return
    sources.drafts.append(
        (
            source,
            index,
            ContactDraft(
                phoneNumber=phone,
                firstName=(values.get("firstName") or "").strip(),
                lastName=(values.get("lastName") or "").strip(),
                email=(values.get("email") or "").strip() or None,
            ),
        )
    )


def _add_csv(sources: Sources, input: CreateCampaignInput, settings: Settings) -> None:
    assert input.rawCsvData is not None
    rows, problems = csvdata.read_rows(input.rawCsvData, max_rows=2 * settings.max_recipients)
    events: list[tuple[int, csvdata.CsvRow | csvdata.CsvProblem]] = [(r.row, r) for r in rows]
    events.extend((p.row, p) for p in problems)
    for _, event in sorted(events, key=lambda e: e[0]):
        if isinstance(event, csvdata.CsvRow):
            _add_draft(sources, "rawCsvData", event.row, dict(event.values), settings)
        else:
            sources.failed.append(
                FailedDetail(
                    source="rawCsvData", index=event.row, code=event.code, message=event.message
                )
            )


def _segment_query(seg: Segmentation, errors: list[FieldError]) -> dict[str, Any]:
    too_many = False
    try:
        query = contact_conditions(
            contact_status=seg.contactStatus,
            process=seg.process,
            tags=seg.tags,
            at=("segmentation",),
        )
    except InvalidInput as refused:  # reported with the request's other errors
        errors.extend(refused.errors)
        query, too_many = {}, True
    created: dict[str, datetime] = {}
    after = parse_instant(seg.createdAfter, ("segmentation", "createdAfter"), errors)
    before = parse_instant(seg.createdBefore, ("segmentation", "createdBefore"), errors)
    if after:
        created["$gte"] = after
    if before:
        created["$lt"] = before
    if created:
        query["createdAt"] = created
    if not query and not too_many and not (seg.createdAfter or seg.createdBefore):
        errors.append(
            FieldError(
                ("segmentation",),
                "EMPTY_SEGMENT",
                "Give at least one of contactStatus, process, tags, createdAfter, createdBefore",
            )
        )
    return query


async def look_up(tenant: Tenant, sources: Sources, settings: Settings) -> Found:
    """Reads the existing contacts the sources name, reporting unknown and foreign ids."""
    by_id = await contacts_by_ids(tenant, list(dict.fromkeys(o for _, _, o in sources.ids)))
    reported: set[ObjectId] = set()
    for source, index, oid in sources.ids:
        if oid in by_id or oid in reported:
            continue
        reported.add(oid)
        sources.failed_ids.append(str(oid))
        sources.failed.append(
            FailedDetail(
                source=source,
                index=index,
                field="_id" if source != "userIds" else None,
                value=str(oid),
                code="CONTACT_NOT_FOUND",
                message=f"No contact {oid} in your organization",
            )
        )
    segment: list[ContactRef] = []
    if sources.segment_query is not None:
        # Opted-out contacts are counted, not listed: a segment can hold thousands of them.
        query = sources.segment_query
        segment = await contacts_matching(
            tenant, {**query, "optedOut": {"$ne": True}}, limit=settings.max_recipients + 1
        )
        opted_out = await count_matching(tenant, {**query, "optedOut": True})
        if opted_out:
            sources.failed.append(
                FailedDetail(
                    source="segmentation",
                    field="optedOut",
                    value=str(opted_out),
                    code="OPTED_OUT",
                    message=f"{opted_out} contacts in the segment have opted out and were left out",
                )
            )
    return Found(by_id=by_id, segment=segment)


def check_limit(sources: Sources, found: Found, settings: Settings) -> None:
    """Refuses more distinct recipients than allowed (phones are unique per organization)."""
    phones = {d.phoneNumber for _, _, d in sources.drafts}
    phones.update(c.phoneNumber for c in found.by_id.values())
    phones.update(c.phoneNumber for c in found.segment)
    if len(phones) > settings.max_recipients:
        raise PayloadTooLarge(
            f"The campaign would have more than {settings.max_recipients} recipients",
            [
                FieldError(
                    (),
                    "TOO_MANY_RECIPIENTS",
                    f"At most {settings.max_recipients} recipients per campaign",
                )
            ],
        )


def values_of(contact: ContactRef | ContactDraft) -> dict[str, str | None]:
    """Returns the values a template can use."""
    return {
        "firstName": contact.firstName,
        "lastName": contact.lastName,
        "phoneNumber": contact.phoneNumber,
        "email": contact.email,
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a contact can get the message: why not (`reason`), or what it costs."""

    reason: tuple[str, str] | None = None
    cost: SmsCost | None = None


def judge(
    template: Template,
    contact: ContactRef | ContactDraft,
    *,
    suppressed: Collection[str] = frozenset(),
    footer: str = "",
) -> Verdict:
    """Renders the message for one contact once, and decides from that rendering; its cost
    counts `footer` (the opt-out footer a first message gets: the worst case)."""
    if isinstance(contact, ContactRef) and contact.optedOut:
        return Verdict(("OPTED_OUT", f"{contact.phoneNumber} has opted out of messages"))
    if contact.phoneNumber in suppressed:
        return Verdict(("SUPPRESSED", f"{contact.phoneNumber} is on the suppression list"))
    try:
        rendered = template.render(values_of(contact))
    except TemplateError as exc:
        return Verdict(exc.problems[0])
    if rendered.missing:
        missing = rendered.missing
        return Verdict(
            (
                "MISSING_TEMPLATE_VALUE",
                f"{contact.phoneNumber} has no {', '.join(missing)}; add a fallback like "
                f"{{{{{missing[0]}|there}}}} to include such contacts",
            )
        )
    if not rendered.text.strip():
        return Verdict(("EMPTY_MESSAGE", f"The message to {contact.phoneNumber} would be empty"))
    cost = sms_cost(rendered.text)
    if cost.segments > MAX_SEGMENTS:
        return Verdict(
            (
                "MESSAGE_TOO_LONG",
                f"The message to {contact.phoneNumber} would be {cost.segments} SMS segments; "
                f"the limit is {MAX_SEGMENTS}",
            )
        )
    return Verdict(cost=sms_cost(with_footer(rendered.text, footer)) if footer else cost)


def sendable(template: Template, contact: ContactRef | ContactDraft) -> bool:
    """Tells whether this contact can get this message."""
    return judge(template, contact).reason is None


async def any_sendable(tenant: Tenant, template: Template, sources: Sources, found: Found) -> bool:
    """Tells, before writing, whether at least one recipient could get the message.

    A typed-in contact whose phone already exists is judged by the stored contact (it may be
    opted out), so sendable drafts are checked against the database in small batches, lazily:
    usually the first batch of new phones settles it.
    """
    if any(sendable(template, c) for c in itertools.chain(found.by_id.values(), found.segment)):
        return True

    async def probe(phones: list[str]) -> bool:
        stored = await contacts_by_phones(tenant, phones)
        return any(p not in stored or sendable(template, stored[p]) for p in phones)

    def candidates() -> Iterator[str]:
        seen: set[str] = set()
        for _, _, draft in sources.drafts:
            if draft.phoneNumber not in seen and sendable(template, draft):
                seen.add(draft.phoneNumber)
                yield draft.phoneNumber

    phones = candidates()
    for size in itertools.chain(itertools.repeat(1, SINGLE_PROBES), itertools.repeat(PROBE_BATCH)):
        batch = list(itertools.islice(phones, size))
        if not batch:
            return False
        if await probe(batch):
            return True
    raise AssertionError("unreachable: the loop ends when the phones do")


@dataclass
class Chosen:
    """The recipients, and the cost of the most expensive message among them."""

    contacts: list[ContactRef]
    worst: SmsCost | None


def choose(
    template: Template,
    sources: Sources,
    found: Found,
    contacts: dict[str, ContactRef],
    *,
    suppressed: Collection[str] = frozenset(),
    footer: str = "",
) -> Chosen:
    """Returns the deduplicated recipients in source order, reporting the excluded ones."""
    ordered: list[tuple[str, int | None, ContactRef]] = []
    ordered.extend((s, i, contacts[d.phoneNumber]) for s, i, d in sources.drafts)
    ordered.extend((s, i, found.by_id[o]) for s, i, o in sources.ids if o in found.by_id)
    ordered.extend(("segmentation", None, c) for c in found.segment)
    chosen: dict[ObjectId, ContactRef] = {}
    worst: SmsCost | None = None
    excluded: set[ObjectId] = set()
    failed_ids = set(sources.failed_ids)
    for source, index, contact in ordered:
        if contact.id in chosen:
            continue
        if contact.id not in excluded:
            verdict = judge(template, contact, suppressed=suppressed, footer=footer)
            if verdict.cost is not None:
                chosen[contact.id] = contact
                if worst is None or _costlier(verdict.cost, worst):
                    worst = verdict.cost
                continue
            assert verdict.reason is not None
            excluded.add(contact.id)
            code, message = verdict.reason
            sources.failed.append(
                FailedDetail(
                    source=source,
                    index=index,
                    field=None,
                    value=str(contact.id),
                    code=code,
                    message=message,
                )
            )
        if source in ID_SOURCES and str(contact.id) not in failed_ids:
            failed_ids.add(str(contact.id))
            sources.failed_ids.append(str(contact.id))
    return Chosen(list(chosen.values()), worst)


def _costlier(a: SmsCost, b: SmsCost) -> bool:
    """Most segments first, then most units: what a carrier bills, not what is longest."""
    return (a.segments, a.units) > (b.segments, b.units)


def recipient_documents(
    campaign_id: ObjectId,
    recipients: Sequence[ContactRef],
    assignees: Sequence[ObjectId],
    *,
    first_seq: int = 0,
) -> list[dict[str, Any]]:
    """Builds the recipient rows numbered from `first_seq`, assigning reps round-robin."""
    rotation = itertools.cycle(assignees) if assignees else None
    return [
        {
            "_id": ObjectId(),
            "campaignId": campaign_id,
            "contactId": contact.id,
            "contactPage": contact.page,
            "seq": seq,
            "batch": seq // RECIPIENT_BATCH,
            "head": seq < HEAD_SIZE,
            "status": RecipientStatus.PENDING.value,
            "assignedTo": next(rotation) if rotation else None,
            "providerMessageId": None,
            "error": None,
            "attempts": 0,
            "sentAt": None,
        }
        for seq, contact in enumerate(recipients, start=first_seq)
    ]


def candidate_phones(sources: Sources, found: Found) -> list[str]:
    """Every phone the sources name, for one suppression-list read before any write."""
    phones = [d.phoneNumber for _, _, d in sources.drafts]
    phones.extend(c.phoneNumber for c in found.by_id.values())
    phones.extend(c.phoneNumber for c in found.segment)
    return list(dict.fromkeys(phones))
