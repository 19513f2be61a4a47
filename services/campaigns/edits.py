"""Changing a campaign's content: its fields, its recipients, and copying it as a new draft.

Content changes only while the campaign is a draft, scheduled or paused: a template swapped
in the middle of sending would give one campaign two messages. Each update is one numbered
change (`services.storage.history`),
so racing edits apply one after the other and never lose a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, InvalidTransition
from models import Campaign, Recipient
from models.campaign import CampaignStatus, FailedDetail
from services.campaigns import queries as campaign_queries
from services.campaigns import recipients
from services.campaigns.creation import (
    MAX_FAILED_DETAILS,
    CreatedCampaign,
    check_follow_ups,
    check_name,
    check_template,
    create_in,
    message_stats,
)
from services.campaigns.lifecycle import EDITABLE
from services.campaigns.templates import Template, parse_template
from services.contacts.records import ContactRef, contacts_by_ids
from services.contacts.suppressions import suppressed_among
from services.dates import parse_send_time
from services.inputs import MAX_NAME, CreateCampaignInput, FollowUpInput, UpdateCampaignInput
from services.storage import buckets
from services.storage.history import Planned, change
from services.storage.tenancy import Tenant

MAX_CHANGED_RECIPIENTS = 10_000
"""Contact ids one update may add or remove; larger lists go through a new campaign."""


@dataclass
class UpdatedCampaign:
    """The campaign as written, and the requested recipient changes that were not made."""

    campaign: Campaign
    failed: list[FailedDetail]


async def update_campaign(
    tenant: Tenant, campaign_id: str, input: UpdateCampaignInput, settings: Settings
) -> UpdatedCampaign:
    """Changes the fields sent; adds and removes recipients by contact id."""
    given = input.model_fields_set
    for name in ("addRecipients", "removeRecipients"):  # before any work on the lists
        if len(getattr(input, name)) > MAX_CHANGED_RECIPIENTS:
            message = f"Add or remove at most {MAX_CHANGED_RECIPIENTS} contacts per update"
            raise InvalidInput(message, [FieldError((name,), "TOO_MANY_RECIPIENTS", message)])
    errors: list[FieldError] = []
    add = _ids(input.addRecipients, "addRecipients", errors)
    remove = _ids(input.removeRecipients, "removeRecipients", errors)
    fields: dict[str, Any] = {}
    template: Template | None = None
    if "name" in given:
        fields["name"] = check_name(input.name, errors)
    if "message" in given:
        template = check_template(input.message, errors)
        if template is not None:
            fields["message"] = template.text
    schedule_given = "scheduleDate" in given
    when = parse_send_time(
        input.scheduleDate, ("scheduleDate",), settings.schedule_grace_seconds, errors
    )
    for name in ("process", "contactStatus", "isAutopilot"):
        if name in given:
            value = getattr(input, name)
            if name == "isAutopilot" and value is None:
                errors.append(FieldError((name,), "REQUIRED", "isAutopilot is true or false"))
            fields[name] = value
    if "followUps" in given:
        steps = check_follow_ups(input.followUps or [], errors)
        fields["followUps"] = [step.model_dump() for step in steps]
    if errors:
        raise InvalidInput("Invalid campaign update", errors)

    failed: list[FailedDetail] = []
    # Autopilot alone may be switched while the campaign sends: it starts or stops steps.
    switch_only = given <= {"isAutopilot"}

    async def plan(campaign: Campaign) -> Planned:
        allowed = EDITABLE | {CampaignStatus.SENDING} if switch_only else EDITABLE
        if campaign.status not in allowed:
            raise InvalidTransition("update", campaign.status.value)
        applied = dict(fields)
        if fields.get("isAutopilot") and not campaign.isAutopilot:
            applied["autopilotSince"] = Tenant.now()  # steps count their delay from now on
        if schedule_given:
            if when is None and campaign.status is CampaignStatus.SCHEDULED:
                message = "A scheduled campaign needs a date; pause or cancel it instead"
                raise InvalidInput(message, [FieldError(("scheduleDate",), "REQUIRED", message)])
            applied["scheduleDate"] = when
            applied["scheduleBucket"] = await buckets.place(tenant, when, campaign.page)
        failed.clear()
        current = template or parse_template(campaign.message)
        added = await _added(tenant, campaign, current, add, failed)
        removable = await _removable(tenant, campaign, remove, failed)
        work: dict[str, Any] = {}
        if added or removable:
            assert campaign.id is not None
            work["insertRecipients"] = recipients.recipient_documents(
                campaign.id, added, [], first_seq=campaign.nextSeq
            )
            if removable:
                work["deletePendingRecipients"] = removable
            total = campaign.stats.total + len(added) - len(removable)
            applied["stats"] = {**campaign.stats.model_dump(), "total": total}
            applied["nextSeq"] = campaign.nextSeq + len(added)
        if template is not None:
            applied["messageStats"] = message_stats(template, None, []).model_dump()
        return Planned("update", applied, campaign.status.value, campaign.status.value, work)

    campaign, _ = await change(tenant, Campaign, campaign_id, plan, what="campaign")
    return UpdatedCampaign(campaign, failed[:MAX_FAILED_DETAILS])


async def duplicate_campaign(
    tenant: Tenant, campaign_id: str, settings: Settings
) -> CreatedCampaign:
    """Creates a draft with the same template, settings and recipients (as they are now)."""
    source = await campaign_queries.get_campaign(tenant, campaign_id)
    assert source.id is not None
    contact_ids = await campaign_queries.recipient_contact_ids(tenant, source.id)
    name = f"{source.name} (copy)"
    input = CreateCampaignInput(
        name=name if len(name) <= MAX_NAME else source.name,
        message=source.message,
        userIds=contact_ids,
        process=source.process,
        contactStatus=source.contactStatus,
        contactStatusOnReply=source.contactStatusOnReply,
        isAutopilot=source.isAutopilot,
        followUps=[
            FollowUpInput(delayMinutes=step.delayMinutes, message=step.message)
            for step in source.followUps
        ],
        status=CampaignStatus.DRAFT.value,
    )
    return await create_in(tenant, input, settings, PydanticObjectId())


def _ids(raw: list[str], source: str, errors: list[FieldError]) -> list[ObjectId]:
    out: dict[ObjectId, None] = {}
    for i, value in enumerate(raw):
        oid = recipients.object_id(value, (source, i), errors)
        if oid is not None:
            out[oid] = None
    return list(out)


async def _added(
    tenant: Tenant,
    campaign: Campaign,
    template: Template,
    add: list[ObjectId],
    failed: list[FailedDetail],
) -> list[ContactRef]:
    """Returns the contacts to add: known, not yet recipients, and able to get the message."""
    if not add:
        return []
    found = await contacts_by_ids(tenant, add)
    present = {
        doc["contactId"]
        for doc in await _recipients_of(tenant, campaign, [c for c in add if c in found])
    }
    suppressed = await suppressed_among(tenant, (c.phoneNumber for c in found.values()))
    chosen: list[ContactRef] = []
    for index, oid in enumerate(add):
        contact = found.get(oid)
        if contact is None:
            failed.append(
                _failed(
                    "addRecipients",
                    index,
                    oid,
                    "CONTACT_NOT_FOUND",
                    f"No contact {oid} in your organization",
                )
            )
            continue
        if oid in present:
            continue  # already a recipient: adding again changes nothing
        verdict = recipients.judge(template, contact, suppressed=suppressed)
        if verdict.reason is not None:
            code, message = verdict.reason
            failed.append(_failed("addRecipients", index, oid, code, message))
            continue
        chosen.append(contact)
    return chosen


async def _removable(
    tenant: Tenant, campaign: Campaign, remove: list[ObjectId], failed: list[FailedDetail]
) -> list[ObjectId]:
    """Returns the recipient ids to delete: those of the contacts named, not yet messaged."""
    if not remove:
        return []
    rows = {doc["contactId"]: doc for doc in await _recipients_of(tenant, campaign, remove)}
    out: list[ObjectId] = []
    for index, oid in enumerate(remove):
        row = rows.get(oid)
        if row is None:
            failed.append(
                _failed(
                    "removeRecipients",
                    index,
                    oid,
                    "NOT_A_RECIPIENT",
                    f"Contact {oid} is not a recipient of this campaign",
                )
            )
        elif row.get("status") != "pending":
            failed.append(
                _failed(
                    "removeRecipients",
                    index,
                    oid,
                    "ALREADY_PROCESSED",
                    f"Contact {oid} was already {row.get('status')}; kept",
                )
            )
        else:
            out.append(row["_id"])
    return out


async def _recipients_of(
    tenant: Tenant, campaign: Campaign, contact_ids: list[ObjectId]
) -> list[dict[str, Any]]:
    """The campaign's recipients for these contacts, in `$in` chunks."""
    return await tenant.raw_find_in(
        Recipient,
        "contactId",
        contact_ids,
        {"contactId": 1, "status": 1},
        where={"campaignId": campaign.id},
    )


def _failed(source: str, index: int, oid: ObjectId, code: str, message: str) -> FailedDetail:
    return FailedDetail(source=source, index=index, value=str(oid), code=code, message=message)
