"""Which organization an inbound message belongs to: the one that owns the sender it came in on.

A sender (a number or a messaging service) is looked up by its key, the `Sender` document's
`_id`: the one cross-organization read here, and one that names no contact. A phone is never
looked up across organizations to find an owner, except in the single-tenant mode below.

Single-tenant mode: a message to the deployment's shared sender (`TWILIO_MESSAGING_SERVICE_SID`
or `TWILIO_FROM_NUMBER`), which no organization owns, goes to the organization that messaged
that phone most recently (campaign sends and reps' messages); if none did, it is not routed.
A deployment with several tenants gives each its own senders and never relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from core.config import Settings
from models import Contact, Message, Recipient, Sender
from models.conversation import Direction, sender_key
from services.storage.tenancy import Tenant


@dataclass(frozen=True)
class Route:
    """Where an inbound message goes: the organization, and the sender it came in on."""

    tenant: Tenant
    sender: str
    shared: bool = False


def shared_senders(settings: Settings) -> frozenset[str]:
    """The deployment's own sender keys (used by organizations that have none)."""
    keys = set()
    if settings.twilio_messaging_service_sid:
        keys.add(sender_key(service=settings.twilio_messaging_service_sid))
    if settings.twilio_from_number:
        keys.add(sender_key(phone=settings.twilio_from_number))
    return frozenset(keys)


def shared_sender(settings: Settings) -> str | None:
    """The key recorded on messages sent through the deployment's sender."""
    if settings.twilio_messaging_service_sid:
        return sender_key(service=settings.twilio_messaging_service_sid)
    if settings.twilio_from_number:
        return sender_key(phone=settings.twilio_from_number)
    return None


async def route(
    *, to: str, messaging_service: str | None, phone: str, settings: Settings
) -> Route | None:
    """The organization owning the sender (the messaging service first, then the number);
    None when nobody owns it and it is not the shared sender, or nobody messaged that phone
    through the shared sender."""
    keys = []
    if messaging_service:
        keys.append(sender_key(service=messaging_service.strip()))
    if to.strip():
        keys.append(sender_key(phone=to.strip()))
    for key in keys:
        owners = await Tenant.across_organizations(Sender, {"_id": key}, {"organizationId": 1})
        if owners:
            return Route(Tenant.for_organization(owners[0]["organizationId"]), key)
    shared = shared_senders(settings)
    matched = next((key for key in keys if key in shared), None)
    if matched is None:
        return None
    organization = await _latest_to_message(phone)
    if organization is None:
        return None
    return Route(Tenant.for_organization(organization), matched, shared=True)


async def _latest_to_message(phone: str) -> ObjectId | None:
    """The organization whose last message to `phone` is the most recent (single-tenant mode)."""
    contacts = await Tenant.across_organizations(
        Contact, {"phoneNumber": phone}, {"organizationId": 1}
    )
    latest: tuple[datetime, ObjectId] | None = None
    for row in contacts:
        tenant = Tenant.for_organization(row["organizationId"])
        when = await last_outbound(tenant, row["_id"])
        if when is not None and (latest is None or when > latest[0]):
            latest = (when, row["organizationId"])
    return latest[1] if latest else None


async def last_outbound(tenant: Tenant, contact_id: ObjectId) -> datetime | None:
    """When the organization last messaged the contact (a campaign's send or a rep's)."""
    sends = tenant.raw_find(Recipient, {"contactId": contact_id}, {"sentAt": 1})
    times: list[datetime] = [row["sentAt"] async for row in sends if row.get("sentAt")]
    mine = tenant.raw_find(Message, {"contactId": contact_id}, {"direction": 1, "createdAt": 1})
    times += [row["createdAt"] async for row in mine if row.get("direction") == Direction.OUTBOUND]
    return max(times, default=None)
