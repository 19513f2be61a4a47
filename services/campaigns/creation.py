"""Creating campaigns: one function that both the GraphQL mutation and the REST route call.

Order of work, so that a request wrong as a whole writes nothing:

1. check the request as a whole (name, message template, type, status, date, ids, limits);
2. resolve every recipient source without writing (phones, ids, CSV rows, segment);
3. write: new contacts (bulk, reusing existing phones), recipients (bulk), then the campaign.

Recipients are inserted before their campaign, so a failure between the two leaves no
half-made campaign behind: the orphaned recipients are deleted and never visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from core.auth import Principal
from core.config import Settings
from core.errors import FieldError, InvalidInput
from models import Campaign, Recipient, User
from models.base import utcnow
from models.campaign import (
    DEFAULT_CONTACT_STATUS,
    MAX_FOLLOW_UP_DELAY_MINUTES,
    MAX_FOLLOW_UPS,
    CampaignStats,
    CampaignStatus,
    CampaignType,
    CreatedBy,
    FailedDetail,
    FollowUp,
    InitialStatus,
    MessageStats,
)
from models.contact import ConsentSource
from services.campaigns import queries as campaign_queries
from services.campaigns import recipients
from services.campaigns.recipients import Sources
from services.campaigns.templates import (
    MAX_RENDERED_CHARS,
    SmsCost,
    Template,
    TemplateError,
    parse_template,
    sms_cost,
)
from services.contacts.consent import INVALID_SOURCE, consent_fields
from services.contacts.edits import users_of_organization
from services.contacts.records import ContactRef, ensure_contacts
from services.contacts.suppressions import suppressed_among
from services.dates import parse_send_time
from services.inputs import MAX_NAME, CreateCampaignInput, FollowUpInput
from services.organizations.footer import footer_for, with_footer
from services.organizations.settings import opt_out_footer
from services.storage import buckets, idempotency, positions, slots, tallies
from services.storage.tenancy import Tenant

MAX_TEMPLATE_CHARS = 4 * MAX_RENDERED_CHARS
MAX_FAILED_DETAILS = 1000
WRITE_BATCH = 5000
INITIAL_STATUSES = tuple(CampaignStatus(s.value) for s in InitialStatus)
CHOICE_CODES: dict[type[StrEnum], str] = {
    InitialStatus: "INVALID_STATUS",
    CampaignType: "UNSUPPORTED_TYPE",
    ConsentSource: INVALID_SOURCE,
}
"""The code a value outside these enums gets. REST sends strings, checked here; GraphQL's
enums refuse such a value before any resolver runs, and give it the same code from this."""


@dataclass
class CreatedCampaign:
    """The stored campaign and its recipients' contact ids, in recipient order."""

    campaign: Campaign
    contact_ids: list[str]
    replayed: bool = False


@dataclass
class _Request:
    """The request after its whole-request checks passed."""

    name: str
    template: Template
    status: CampaignStatus
    schedule: datetime | None
    sources: Sources
    assignees: list[ObjectId]
    follow_ups: list[FollowUp]
    consent: dict[str, dict[str, Any]]
    """The consent fields of the contacts it creates, by where they came from."""


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
    if idempotency_key is None or not idempotency_key.strip():
        return await create_in(tenant, input, settings, PydanticObjectId())

    async def work(planned: dict[str, Any], resumed: bool) -> object:
        campaign_id = PydanticObjectId(planned["campaignId"])
        if resumed:  # a crashed attempt may have left recipients without their campaign
            await tenant.delete_many(Recipient, {"campaignId": campaign_id})
        return await create_in(tenant, input, settings, campaign_id)

    async def finished(planned: dict[str, Any]) -> bool:
        return await tenant.get(Campaign, planned["campaignId"]) is not None

    outcome = await idempotency.run_once(
        tenant,
        scope="createCampaign",
        key=idempotency_key,
        request=input.fingerprint_source(),
        planned={"campaignId": str(ObjectId())},
        work=work,
        finished=finished,
    )
    if outcome.replayed:
        return await get_created_campaign(tenant, PydanticObjectId(outcome.result["campaignId"]))
    assert isinstance(outcome.value, CreatedCampaign)
    return outcome.value


async def get_created_campaign(tenant: Tenant, campaign_id: PydanticObjectId) -> CreatedCampaign:
    """Loads a campaign and its recipients' contact ids, for replaying a creation."""
    campaign = await tenant.get(Campaign, campaign_id)
    if campaign is None:
        raise InvalidInput("The campaign this idempotency key created no longer exists")
    contact_ids = await campaign_queries.recipient_contact_ids(tenant, campaign_id)
    return CreatedCampaign(campaign=campaign, contact_ids=contact_ids, replayed=True)


async def create_in(
    tenant: Tenant, input: CreateCampaignInput, settings: Settings, campaign_id: PydanticObjectId
) -> CreatedCampaign:
    """Creates a campaign in `tenant` without an idempotency key (duplication uses this)."""
    request = await _check_request(tenant, input, settings)
    sources = request.sources
    found = await recipients.look_up(tenant, sources, settings)
    recipients.check_limit(sources, found, settings)
    scheduled = request.status is CampaignStatus.SCHEDULED
    if scheduled and not await recipients.any_sendable(tenant, request.template, sources, found):
        raise _no_recipients()

    suppressed = await suppressed_among(tenant, recipients.candidate_phones(sources, found))
    footer = footer_for(request.template.text, await opt_out_footer(tenant))
    contact_status = input.contactStatus or DEFAULT_CONTACT_STATUS
    for source, _, draft in sources.drafts:
        draft.extra.update(request.consent.get(source, {}))
    contacts = await ensure_contacts(
        tenant,
        [d for _, _, d in sources.drafts],
        batch_size=WRITE_BATCH,
        contact_status=contact_status,
    )
    chosen = recipients.choose(
        request.template, sources, found, contacts, suppressed=suppressed, footer=footer
    )
    if scheduled and not chosen.contacts:
        # Only reachable if another request changed those contacts since the check above.
        raise _no_recipients()
    await _remember_caller(tenant)

    failed = sources.failed
    campaign = Campaign(
        id=campaign_id,
        organizationId=tenant.organization_id,
        name=request.name,
        message=request.template.text,
        type=CampaignType.SMS,
        status=request.status,
        scheduleDate=request.schedule,
        process=input.process,
        contactStatus=contact_status,
        contactStatusOnReply=(input.contactStatusOnReply or "").strip()[:200] or None,
        isAutopilot=input.isAutopilot,
        followUps=request.follow_ups,
        autopilotSince=utcnow() if input.isAutopilot else None,
        segmentation=input.segmentation.model_dump(exclude_none=True)
        if input.segmentation
        else None,
        assignment=input.assignment.model_dump() if input.assignment else None,
        createdBy=CreatedBy(
            id=PydanticObjectId(tenant.principal.user_id), fullName=tenant.principal.full_name
        ),
        failedUserIds=sources.failed_ids,
        failedDetails=failed[:MAX_FAILED_DETAILS],
        failedDetailsTotal=len(failed),
        stats=CampaignStats(total=len(chosen.contacts)),
        nextSeq=len(chosen.contacts),
        messageStats=message_stats(request.template, chosen.worst, failed, footer),
    )
    await _insert_recipients(tenant, campaign_id, chosen.contacts, request.assignees)
    campaign.listSeq = await slots.CAMPAIGNS.claim(tenant)
    campaign.page = campaign.listSeq // positions.CAMPAIGNS_PER_PAGE
    campaign.scheduleBucket = await buckets.place(tenant, campaign.scheduleDate, campaign.page)
    try:
        await tenant.insert(campaign)
    except ConnectionFailure:
        raise  # the insert may have landed: keep its recipients; a keyed retry settles it
    except BaseException:
        await tenant.delete_many(Recipient, {"campaignId": campaign_id})
        await slots.CAMPAIGNS.record_gaps(tenant, [campaign.listSeq])
        raise
    await tallies.add(tenant, tallies.CAMPAIGNS, 1)
    await tallies.moved(tenant, Campaign, None, campaign.status)
    return CreatedCampaign(campaign=campaign, contact_ids=[str(r.id) for r in chosen.contacts])


def _no_recipients() -> InvalidInput:
    return InvalidInput(
        "A scheduled campaign needs at least one valid recipient",
        [
            FieldError(
                ("status",),
                "NO_RECIPIENTS",
                "No valid recipients; fix the recipients or save as 'draft'",
            )
        ],
    )


async def _check_request(
    tenant: Tenant, input: CreateCampaignInput, settings: Settings
) -> _Request:
    errors: list[FieldError] = []
    name = check_name(input.name, errors)
    template = check_template(input.message, errors)
    follow_ups = check_follow_ups(input.followUps, errors)

    if input.type.strip().lower() != CampaignType.SMS:
        errors.append(
            FieldError(
                ("type",),
                CHOICE_CODES[CampaignType],
                f"Campaign type '{input.type}' is not supported; use 'sms'",
            )
        )

    schedule = parse_send_time(
        input.scheduleDate, ("scheduleDate",), settings.schedule_grace_seconds, errors
    )

    status = _initial_status(input.status, schedule, errors)
    if status is CampaignStatus.SCHEDULED and schedule is None:
        schedule = utcnow()  # 'scheduled' without a date: send now

    sources = recipients.parse_sources(input, settings, errors)
    assignees = await _check_assignees(tenant, input, errors)
    consent = _consent(input, errors)
    if errors or template is None:
        raise InvalidInput("Campaign input is invalid", errors)
    return _Request(name, template, status, schedule, sources, assignees, follow_ups, consent)


CONSENT_DEFAULTS = {"newContacts": ConsentSource.MANUAL, "rawCsvData": ConsentSource.IMPORT}
"""The consent source of the contacts a campaign creates when the caller names none: typed
by the rep, or from a list."""


def _consent(input: CreateCampaignInput, errors: list[FieldError]) -> dict[str, dict[str, Any]]:
    """Returns the consent fields of new contacts, by the part of the input they came from."""
    now = utcnow()
    given = consent_fields(input.consent, default=None, now=now, at=("consent",), errors=errors)
    by_source: dict[str, dict[str, Any]] = {}
    for source, default in CONSENT_DEFAULTS.items():
        fields = {"consentSource": default, "consentAt": now, **given}
        if fields["consentSource"] is None:
            fields = {"consentSource": None, "consentAt": None, "consentFile": None}
        by_source[source] = {
            k: v.value if isinstance(v, ConsentSource) else v for k, v in fields.items()
        }
    return by_source


def check_name(raw: str | None, errors: list[FieldError]) -> str:
    """Returns the name trimmed; a blank or overlong name goes to `errors`."""
    name = (raw or "").strip()
    if not name:
        errors.append(FieldError(("name",), "REQUIRED", "Name is required"))
    elif len(name) > MAX_NAME:
        errors.append(
            FieldError(("name",), "TOO_LONG", f"Name is longer than {MAX_NAME} characters")
        )
    return name


def check_template(
    raw: str | None, errors: list[FieldError], path: tuple[str, ...] = ("message",)
) -> Template | None:
    """Parses the message template; its problems go to `errors` and give None."""
    message = (raw or "").strip()
    if not message:
        errors.append(FieldError(path, "REQUIRED", "Message is required"))
        return None
    if len(message) > MAX_TEMPLATE_CHARS:
        errors.append(
            FieldError(
                path,
                "MESSAGE_TOO_LONG",
                f"Message is {len(message)} characters; a template may have "
                f"at most {MAX_TEMPLATE_CHARS}",
            )
        )
        return None
    try:
        template = parse_template(message)
    except TemplateError as exc:
        errors.extend(FieldError(path, code, text) for code, text in exc.problems)
        return None
    # The shortest rendering anyone could get (fallbacks, one-letter values) must fit.
    try:
        cost = sms_cost(template.render(dict.fromkeys(template.required_fields(), "x")).text)
    except TemplateError as exc:  # a fallback alone is over the limit
        errors.extend(FieldError(path, code, text) for code, text in exc.problems)
        return None
    if cost.segments > recipients.MAX_SEGMENTS:
        errors.append(
            FieldError(
                path,
                "MESSAGE_TOO_LONG",
                f"The message is at least {cost.segments} SMS segments "
                f"({cost.encoding}); the limit is {recipients.MAX_SEGMENTS}",
            )
        )
        return None
    return template


def check_follow_ups(steps: Sequence[FollowUpInput], errors: list[FieldError]) -> list[FollowUp]:
    """The follow-up steps as stored; each message is checked like the first one, with its
    problems at `followUps.<i>.message`."""
    if len(steps) > MAX_FOLLOW_UPS:
        errors.append(
            FieldError(
                ("followUps",),
                "TOO_MANY_FOLLOW_UPS",
                f"{len(steps)} follow-ups; a campaign may have at most {MAX_FOLLOW_UPS}",
            )
        )
        return []
    out: list[FollowUp] = []
    for i, step in enumerate(steps):
        if not 1 <= step.delayMinutes <= MAX_FOLLOW_UP_DELAY_MINUTES:
            errors.append(
                FieldError(
                    ("followUps", str(i), "delayMinutes"),
                    "INVALID_DELAY",
                    f"delayMinutes must be 1-{MAX_FOLLOW_UP_DELAY_MINUTES} (30 days)",
                )
            )
        template = check_template(step.message, errors, ("followUps", str(i), "message"))
        if template is not None:
            out.append(FollowUp(delayMinutes=step.delayMinutes, message=template.text))
    return out


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
                CHOICE_CODES[InitialStatus],
                f"A new campaign's status is 'draft' or 'scheduled', not '{raw}'",
            )
        )
        return CampaignStatus.DRAFT
    return CampaignStatus(value)


async def _check_assignees(
    tenant: Tenant, input: CreateCampaignInput, errors: list[FieldError]
) -> list[ObjectId]:
    """Returns the assignees, all of whom must be users of the caller's organization."""
    if input.assignment is None:
        return []
    ids: list[ObjectId] = []
    for i, raw in enumerate(input.assignment.userIds):
        oid = recipients.object_id(raw, ("assignment", "userIds", i), errors)
        if oid is not None:
            ids.append(oid)
    if input.assignment.strategy == "single" and len(input.assignment.userIds) != 1:
        errors.append(
            FieldError(
                ("assignment", "userIds"),
                "INVALID",
                "The 'single' strategy takes exactly one user id",
            )
        )
    known = await users_of_organization(tenant, ids)
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


async def _remember_caller(tenant: Tenant) -> None:
    """Keeps a `User` for each rep who creates campaigns, so assignments can name them.

    Insert first and let the unique `(organizationId, userId)` index pick the one writer when a
    new rep's first requests race (an upsert would have them all write the same document, and
    FerretDB answers a racing upsert with a plain error rather than a duplicate key). A known
    rep costs one read, and a write only when the token's name or roles changed.
    """
    principal = tenant.principal
    user_id = PydanticObjectId(principal.user_id)
    profile: dict[str, object] = {"fullName": principal.full_name, "roles": list(principal.roles)}
    user = User(
        organizationId=tenant.organization_id,
        userId=user_id,
        fullName=principal.full_name,
        roles=list(principal.roles),
    )
    try:
        await tenant.insert(user)
        return
    except DuplicateKeyError:
        pass
    fields = {"fullName": 1, "roles": 1}
    stored = await tenant.raw_find(User, {"userId": user_id}, fields).to_list(1)
    if stored and {k: stored[0].get(k) for k in profile} != profile:
        await tenant.update_one(
            User, {"userId": user_id}, {"$set": {**profile, "updatedAt": tenant.now()}}
        )


def message_stats(
    template: Template, worst: SmsCost | None, failed: list[FailedDetail], footer: str = ""
) -> MessageStats:
    """Reports the costliest recipient's message, with the opt-out footer a first message
    gets (the worst case); with no recipients, the bare template's."""
    if worst is None:
        bare = template.render({f: "" for f in template.placeholders()}).text
        worst = sms_cost(with_footer(bare or template.text, footer))
    missing = sum(1 for d in failed if d.code == "MISSING_TEMPLATE_VALUE")
    return MessageStats(
        encoding=worst.encoding,
        segments=worst.segments,
        characters=worst.characters,
        recipientsMissingValues=missing,
    )


async def _insert_recipients(
    tenant: Tenant,
    campaign_id: PydanticObjectId,
    chosen: list[ContactRef],
    assignees: list[ObjectId],
) -> None:
    docs = recipients.recipient_documents(campaign_id, chosen, assignees)
    try:
        await tenant.insert_in_batches(Recipient, docs, batch=WRITE_BATCH)
    except BaseException:
        await tenant.delete_many(Recipient, {"campaignId": campaign_id})
        raise
