"""Creating campaigns: one function that both the GraphQL mutation and the REST route call.

Order of work, so that a request wrong as a whole writes nothing:

1. check the request as a whole (name, message template, type, status, date, ids, limits);
2. resolve every recipient source without writing (phones, ids, CSV rows, segment);
3. write: new contacts (bulk, reusing existing phones), recipients (bulk), then the campaign.

Recipients are inserted before their campaign, so a failure between the two leaves no
half-made campaign behind: the orphaned recipients are deleted and never visible.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from bson.errors import InvalidId

from core.auth import Principal
from core.config import Settings
from core.errors import FieldError, InvalidInput, Path, PayloadTooLarge
from models import Campaign, Recipient, User
from models.campaign import (
    CampaignStats,
    CampaignStatus,
    CampaignType,
    CreatedBy,
    FailedDetail,
    MessageStats,
)
from models.recipient import RecipientStatus
from services import csvdata, idempotency
from services.contacts import (
    ContactDraft,
    ContactRef,
    PhoneError,
    contacts_by_ids,
    contacts_matching,
    ensure_contacts,
    normalize_phone,
)
from services.inputs import CreateCampaignInput, Segmentation
from services.messages import Template, TemplateError, parse_template, sms_cost
from services.tenancy import Tenant

MAX_NAME = 200
WRITE_BATCH = 5000
MAX_SEGMENTS = 10
MIN_CHARS_OVER_SEGMENT_LIMIT = 335  # 10 UCS-2 segments hold 670 units: >= 336 characters
INITIAL_STATUSES = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


@dataclass
class CreatedCampaign:
    """The stored campaign and its recipients' contact ids, in recipient order."""

    campaign: Campaign
    contact_ids: list[str]
    replayed: bool = False


@dataclass
class _Plan:
    """What the checks decided, before anything is written."""

    name: str
    template_or_none: Template | None
    status: CampaignStatus
    schedule: datetime | None
    drafts: list[tuple[str, int, ContactDraft]] = field(default_factory=list)
    id_sources: list[tuple[str, int, ObjectId]] = field(default_factory=list)
    segment_query: dict[str, Any] | None = None
    assignees: list[PydanticObjectId] = field(default_factory=list)
    failed: list[FailedDetail] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)

    @property
    def template(self) -> Template:
        """Returns the checked template; only read after the request passed its checks."""
        assert self.template_or_none is not None
        return self.template_or_none


async def create_campaign(
    *,
    principal: Principal,
    input: CreateCampaignInput,
    settings: Settings,
    idempotency_key: str | None = None,
) -> CreatedCampaign:
    """Creates a campaign from every recipient source of the legacy contract.

    With an `idempotency_key`, a retry of the same input replays the first result and the
    same key with another input is a conflict.
    """
    tenant = Tenant(principal)
    if idempotency_key is None:
        return await _create(tenant, input, settings)
    outcome = await idempotency.run_once(
        tenant,
        scope="createCampaign",
        key=idempotency_key,
        request=input.fingerprint_source(),
        work=lambda: _create_for_key(tenant, input, settings),
    )
    if outcome.replayed:
        return await get_created_campaign(tenant, PydanticObjectId(outcome.result["campaignId"]))
    created = outcome.value
    assert isinstance(created, CreatedCampaign)
    return created


async def _create_for_key(
    tenant: Tenant, input: CreateCampaignInput, settings: Settings
) -> tuple[CreatedCampaign, dict[str, Any]]:
    created = await _create(tenant, input, settings)
    return created, {"campaignId": str(created.campaign.id)}


async def get_created_campaign(tenant: Tenant, campaign_id: PydanticObjectId) -> CreatedCampaign:
    """Loads a campaign and its recipients' contact ids, for replaying a creation."""
    campaign = await tenant.get(Campaign, campaign_id)
    if campaign is None:
        raise InvalidInput("The campaign this idempotency key created no longer exists")
    cursor = tenant.raw_find(Recipient, {"campaignId": campaign_id}, {"contactId": 1})
    contact_ids = [str(doc["contactId"]) async for doc in cursor.sort("_id", 1)]
    return CreatedCampaign(campaign=campaign, contact_ids=contact_ids, replayed=True)


async def _create(
    tenant: Tenant, input: CreateCampaignInput, settings: Settings
) -> CreatedCampaign:
    plan = await _check_request(tenant, input, settings)
    existing, segment = await _read_sources(tenant, plan)
    _check_limits(plan, existing, segment, settings)
    _precheck_recipients(plan, existing, segment)

    await _remember_caller(tenant)
    created = await ensure_contacts(tenant, [d for _, _, d in plan.drafts], batch_size=WRITE_BATCH)
    recipients = _choose_recipients(plan, created, existing, segment)
    if not recipients and plan.status is CampaignStatus.SCHEDULED:
        raise InvalidInput(
            "A scheduled campaign needs at least one valid recipient",
            [
                FieldError(
                    ("status",),
                    "NO_RECIPIENTS",
                    "No valid recipients remain; fix the recipients or save as 'draft'",
                )
            ],
        )

    campaign = Campaign(
        id=PydanticObjectId(),
        organizationId=tenant.organization_id,
        name=plan.name,
        message=plan.template.text,
        type=CampaignType.SMS,
        status=plan.status,
        scheduleDate=plan.schedule,
        process=input.process,
        contactStatus=input.contactStatus,
        isAutopilot=input.isAutopilot,
        segmentation=input.segmentation.model_dump(exclude_none=True)
        if input.segmentation
        else None,
        assignment=input.assignment.model_dump() if input.assignment else None,
        createdBy=CreatedBy(
            id=PydanticObjectId(tenant.principal.user_id), fullName=tenant.principal.full_name
        ),
        failedUserIds=plan.failed_ids,
        failedDetails=plan.failed,
        stats=CampaignStats(total=len(recipients)),
        messageStats=_message_stats(plan, recipients),
    )
    await _insert_recipients(tenant, campaign, recipients, plan.assignees)
    try:
        await tenant.insert(campaign)
    except BaseException:
        await tenant.delete_many(Recipient, {"campaignId": campaign.id})
        raise
    return CreatedCampaign(campaign=campaign, contact_ids=[str(r.id) for r in recipients])


# -- 1. the request as a whole ------------------------------------------------------------


async def _check_request(tenant: Tenant, input: CreateCampaignInput, settings: Settings) -> _Plan:
    errors: list[FieldError] = []
    name = (input.name or "").strip()
    if not name:
        errors.append(FieldError(("name",), "REQUIRED", "Name is required"))
    elif len(name) > MAX_NAME:
        errors.append(
            FieldError(("name",), "TOO_LONG", f"Name is longer than {MAX_NAME} characters")
        )

    template: Template | None = None
    message = (input.message or "").strip()
    if not message:
        errors.append(FieldError(("message",), "REQUIRED", "Message is required"))
    else:
        try:
            template = parse_template(message)
        except TemplateError as exc:
            errors.extend(FieldError(("message",), code, text) for code, text in exc.problems)

    if input.type.strip().lower() != CampaignType.SMS:
        errors.append(
            FieldError(
                ("type",),
                "UNSUPPORTED_TYPE",
                f"Campaign type '{input.type}' is not supported; use 'sms'",
            )
        )

    schedule = _parse_date(input.scheduleDate, ("scheduleDate",), errors)
    if schedule is not None:
        earliest = datetime.now(UTC) - timedelta(seconds=settings.schedule_grace_seconds)
        if schedule < earliest:
            errors.append(
                FieldError(
                    ("scheduleDate",),
                    "DATE_IN_PAST",
                    "scheduleDate is in the past; pick a time from now on",
                )
            )

    status = _initial_status(input.status, schedule, errors)
    if status is CampaignStatus.SCHEDULED and schedule is None:
        schedule = datetime.now(UTC)  # an explicit 'scheduled' with no date means "send now"

    plan = _Plan(name=name, template_or_none=template, status=status, schedule=schedule)
    _collect_new_contacts(plan, input, settings)
    _collect_ids(plan, input, errors)
    if input.rawCsvData is not None:
        try:
            _collect_csv(plan, input, settings)
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if input.segmentation is not None:
        plan.segment_query = _segment_query(input.segmentation, errors)
    if input.assignment is not None:
        plan.assignees = await _check_assignees(tenant, input, errors)
    if errors:
        raise InvalidInput("Campaign input is invalid", errors)
    return plan


def _parse_date(raw: str | None, path: Path, errors: list[FieldError]) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        errors.append(
            FieldError(
                path,
                "INVALID_DATE",
                f"'{raw}' is not an ISO 8601 date-time, e.g. 2026-05-20T15:00:00.000Z",
            )
        )
        return None
    if value.tzinfo is None:
        errors.append(
            FieldError(
                path, "INVALID_DATE", "Include a time zone, e.g. 2026-05-20T15:00:00Z or +02:00"
            )
        )
        return None
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _initial_status(
    raw: str | None, schedule: datetime | None, errors: list[FieldError]
) -> CampaignStatus:
    if raw is None or not raw.strip():
        return CampaignStatus.SCHEDULED if schedule else CampaignStatus.DRAFT
    value = raw.strip().lower()
    if value not in INITIAL_STATUSES:
        errors.append(
            FieldError(
                ("status",),
                "INVALID_STATUS",
                f"A new campaign's status is 'draft' or 'scheduled', not '{raw}'",
            )
        )
        return CampaignStatus.DRAFT
    return CampaignStatus(value)


def _object_id(raw: str, path: Path, errors: list[FieldError]) -> ObjectId | None:
    try:
        return ObjectId(raw.strip())
    except (InvalidId, TypeError):
        errors.append(FieldError(path, "INVALID_ID", f"'{raw}' is not an id (24 hex characters)"))
        return None


def _collect_ids(plan: _Plan, input: CreateCampaignInput, errors: list[FieldError]) -> None:
    for i, ref in enumerate(input.selectedExistingContacts):
        oid = _object_id(ref.id, ("selectedExistingContacts", i, "_id"), errors)
        if oid is not None:
            plan.id_sources.append(("selectedExistingContacts", i, oid))
    for i, raw in enumerate(input.userIds):
        oid = _object_id(raw, ("userIds", i), errors)
        if oid is not None:
            plan.id_sources.append(("userIds", i, oid))


def _draft(
    plan: _Plan, source: str, index: int, values: dict[str, str | None], settings: Settings
) -> None:
    raw_phone = values.get("phoneNumber")
    try:
        phone = normalize_phone(raw_phone, settings.default_phone_region)
    except PhoneError as exc:
        plan.failed.append(
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
    email = (values.get("email") or "").strip() or None
    plan.drafts.append(
        (
            source,
            index,
            ContactDraft(
                phoneNumber=phone,
                firstName=(values.get("firstName") or "").strip(),
                lastName=(values.get("lastName") or "").strip(),
                email=email,
            ),
        )
    )


def _collect_new_contacts(plan: _Plan, input: CreateCampaignInput, settings: Settings) -> None:
    for i, contact in enumerate(input.newContacts):
        _draft(plan, "newContacts", i, contact.model_dump(), settings)


def _collect_csv(plan: _Plan, input: CreateCampaignInput, settings: Settings) -> None:
    assert input.rawCsvData is not None
    rows, problems = csvdata.read_rows(input.rawCsvData)
    pending = {p.row: p for p in problems}
    for row in rows:
        for number in sorted(n for n in pending if n < row.row):
            _csv_problem(plan, pending.pop(number))
        _draft(plan, "rawCsvData", row.row, dict(row.values), settings)
    for number in sorted(pending):
        _csv_problem(plan, pending[number])


def _csv_problem(plan: _Plan, problem: csvdata.CsvProblem) -> None:
    plan.failed.append(
        FailedDetail(
            source="rawCsvData", index=problem.row, code=problem.code, message=problem.message
        )
    )


def _segment_query(seg: Segmentation, errors: list[FieldError]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if isinstance(seg.contactStatus, list):
        query["contactStatus"] = {"$in": seg.contactStatus}
    elif seg.contactStatus is not None:
        query["contactStatus"] = seg.contactStatus
    if seg.process is not None:
        query["process"] = seg.process
    if seg.tags:
        query["tags"] = {"$in": seg.tags}
    created: dict[str, datetime] = {}
    after = _parse_date(seg.createdAfter, ("segmentation", "createdAfter"), errors)
    before = _parse_date(seg.createdBefore, ("segmentation", "createdBefore"), errors)
    if after:
        created["$gte"] = after
    if before:
        created["$lt"] = before
    if created:
        query["createdAt"] = created
    if not query:
        errors.append(
            FieldError(
                ("segmentation",),
                "EMPTY_SEGMENT",
                "Give at least one of contactStatus, process, tags, createdAfter, createdBefore",
            )
        )
    return query


async def _check_assignees(
    tenant: Tenant, input: CreateCampaignInput, errors: list[FieldError]
) -> list[PydanticObjectId]:
    assert input.assignment is not None
    ids: list[PydanticObjectId] = []
    for i, raw in enumerate(input.assignment.userIds):
        oid = _object_id(raw, ("assignment", "userIds", i), errors)
        if oid is not None:
            ids.append(PydanticObjectId(oid))
    if input.assignment.strategy == "single" and len(input.assignment.userIds) != 1:
        errors.append(
            FieldError(
                ("assignment", "userIds"),
                "INVALID",
                "The 'single' strategy takes exactly one user id",
            )
        )
    known = {u.id for u in await tenant.ids_present(User, ids)}
    known.add(PydanticObjectId(tenant.principal.user_id))
    for i, oid in enumerate(ids):
        if oid not in known:
            errors.append(
                FieldError(
                    ("assignment", "userIds", i),
                    "UNKNOWN_USER",
                    f"No user {oid} in your organization",
                )
            )
    return ids


# -- 2. reading the sources ---------------------------------------------------------------


async def _read_sources(
    tenant: Tenant, plan: _Plan
) -> tuple[dict[ObjectId, ContactRef], list[ContactRef]]:
    existing = await contacts_by_ids(tenant, list(dict.fromkeys(o for _, _, o in plan.id_sources)))
    reported: set[ObjectId] = set()
    for source, index, oid in plan.id_sources:
        if oid in existing or oid in reported:
            continue
        reported.add(oid)
        plan.failed_ids.append(str(oid))
        plan.failed.append(
            FailedDetail(
                source=source,
                index=index,
                field="_id" if source != "userIds" else None,
                value=str(oid),
                code="CONTACT_NOT_FOUND",
                message=f"No contact {oid} in your organization",
            )
        )
    segment = (
        await contacts_matching(tenant, plan.segment_query)
        if plan.segment_query is not None
        else []
    )
    return existing, segment


def _check_limits(
    plan: _Plan, existing: dict[ObjectId, ContactRef], segment: list[ContactRef], settings: Settings
) -> None:
    phones = {d.phoneNumber for _, _, d in plan.drafts}
    phones.update(c.phoneNumber for c in existing.values())
    phones.update(c.phoneNumber for c in segment)
    if len(phones) > settings.max_recipients:
        raise PayloadTooLarge(
            f"The campaign would have {len(phones)} recipients; the limit is "
            f"{settings.max_recipients}",
            [
                FieldError(
                    (),
                    "TOO_MANY_RECIPIENTS",
                    f"At most {settings.max_recipients} recipients per campaign",
                )
            ],
        )


def _precheck_recipients(
    plan: _Plan, existing: dict[ObjectId, ContactRef], segment: list[ContactRef]
) -> None:
    """Refuses before writing when the message is too long, or nothing could be sent."""
    candidates: list[dict[str, str | None]] = [
        {
            "firstName": d.firstName,
            "lastName": d.lastName,
            "phoneNumber": d.phoneNumber,
            "email": d.email,
        }
        for _, _, d in plan.drafts
    ]
    candidates.extend(
        _values(c) for c in itertools.chain(existing.values(), segment) if not c.optedOut
    )
    sendable = 0
    for values in candidates:
        try:
            rendered = plan.template.render(values)
        except TemplateError as exc:
            raise InvalidInput(
                "The message is too long",
                [FieldError(("message",), code, text) for code, text in exc.problems],
            ) from exc
        if rendered.missing:
            continue
        sendable += 1
        if len(rendered.text) > MIN_CHARS_OVER_SEGMENT_LIMIT:
            _check_segments(rendered.text)
    if sendable == 0 and plan.status is CampaignStatus.SCHEDULED:
        raise InvalidInput(
            "A scheduled campaign needs at least one valid recipient",
            [
                FieldError(
                    ("status",),
                    "NO_RECIPIENTS",
                    "No valid recipients; fix the recipients or save as 'draft'",
                )
            ],
        )


def _check_segments(text: str) -> None:
    cost = sms_cost(text)
    if cost.segments > MAX_SEGMENTS:
        raise InvalidInput(
            "The message is too long",
            [
                FieldError(
                    ("message",),
                    "MESSAGE_TOO_LONG",
                    f"The message renders to {cost.segments} SMS segments ({cost.encoding}, "
                    f"{cost.characters} characters); the limit is {MAX_SEGMENTS}",
                )
            ],
        )


def _values(contact: ContactRef) -> dict[str, str | None]:
    return {
        "firstName": contact.firstName,
        "lastName": contact.lastName,
        "phoneNumber": contact.phoneNumber,
        "email": contact.email,
    }


# -- 3. writing ---------------------------------------------------------------------------


async def _remember_caller(tenant: Tenant) -> None:
    """Keeps a `User` for each rep who creates campaigns, so assignments can name them."""
    principal = tenant.principal
    await tenant.upsert(
        User,
        {"_id": principal.user_id},
        {"fullName": principal.full_name, "roles": list(principal.roles)},
    )


def _choose_recipients(
    plan: _Plan,
    created: dict[str, ContactRef],
    existing: dict[ObjectId, ContactRef],
    segment: list[ContactRef],
) -> list[ContactRef]:
    """Returns the deduplicated recipients in source order, reporting the excluded ones."""
    ordered: list[tuple[str, int | None, ContactRef]] = []
    ordered.extend((s, i, created[d.phoneNumber]) for s, i, d in plan.drafts)
    ordered.extend((s, i, existing[o]) for s, i, o in plan.id_sources if o in existing)
    ordered.extend(("segmentation", None, c) for c in segment)
    chosen: dict[ObjectId, ContactRef] = {}
    excluded: set[ObjectId] = set()
    for source, index, contact in ordered:
        if contact.id in chosen or contact.id in excluded:
            continue
        reason = _exclusion(plan.template, contact)
        if reason is None:
            chosen[contact.id] = contact
            continue
        excluded.add(contact.id)
        code, message = reason
        plan.failed.append(
            FailedDetail(
                source=source,
                index=index,
                field=None,
                value=str(contact.id),
                code=code,
                message=message,
            )
        )
        if source in ("selectedExistingContacts", "userIds"):
            plan.failed_ids.append(str(contact.id))
    return list(chosen.values())


def _exclusion(template: Template, contact: ContactRef) -> tuple[str, str] | None:
    if contact.optedOut:
        return "OPTED_OUT", f"{contact.phoneNumber} has opted out of messages"
    try:
        missing = template.render(_values(contact)).missing
    except TemplateError as exc:
        return exc.problems[0]
    if missing:
        names = ", ".join(missing)
        return (
            "MISSING_TEMPLATE_VALUE",
            f"{contact.phoneNumber} has no {names}; add a fallback like "
            f"{{{{{missing[0]}|there}}}} to include such contacts",
        )
    return None


def _message_stats(plan: _Plan, recipients: Sequence[ContactRef]) -> MessageStats:
    longest = ""
    for contact in recipients:
        text = plan.template.render(_values(contact)).text
        if len(text) > len(longest):
            longest = text
    if not recipients:
        longest = plan.template.render({}).text or plan.template.text
    cost = sms_cost(longest)
    missing = sum(1 for d in plan.failed if d.code == "MISSING_TEMPLATE_VALUE")
    return MessageStats(
        encoding=cost.encoding,
        segments=cost.segments,
        characters=cost.characters,
        recipientsMissingValues=missing,
    )


async def _insert_recipients(
    tenant: Tenant,
    campaign: Campaign,
    recipients: Iterable[ContactRef],
    assignees: Sequence[PydanticObjectId],
) -> None:
    rotation = itertools.cycle(assignees) if assignees else None
    docs = [
        {
            "_id": ObjectId(),
            "campaignId": campaign.id,
            "contactId": contact.id,
            "status": RecipientStatus.PENDING.value,
            "assignedTo": next(rotation) if rotation else None,
            "providerMessageId": None,
            "error": None,
            "attempts": 0,
            "sentAt": None,
        }
        for contact in recipients
    ]
    try:
        for start in range(0, len(docs), WRITE_BATCH):
            await tenant.raw_insert_many(Recipient, docs[start : start + WRITE_BATCH], ordered=True)
    except BaseException:
        await tenant.delete_many(Recipient, {"campaignId": campaign.id})
        raise
