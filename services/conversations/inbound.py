"""A message a contact sent: routed to the organization owning the sender, stored once, read
for keywords, attributed to the campaign it answers, and logged for the inbox.

The provider's `MessageSid` is unique per organization (`Message`'s index), so Twilio's
retries store one message; a retry still re-applies the idempotent effects (an opt-out, the
reply's attribution) in case the first delivery's handler died half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from core.config import Settings
from core.errors import NotFound
from models import Contact, Message
from models.contact import ConsentSource
from models.conversation import Direction, MessageStatus
from services.contacts import edits as contact_edits
from services.contacts.records import (
    REF_PROJECTION,
    ContactDraft,
    ContactRef,
    PhoneError,
    ensure_contacts,
    normalize_phone,
)
from services.conversations import activity, attribution, routing, summaries
from services.conversations.keywords import Keyword, normalized, read_keyword
from services.conversations.threads import contact_values
from services.organizations.senders import remember_sender
from services.organizations.settings import defaults_from, organization_settings
from services.sending import followups
from services.sending.contact_sends import contact_sends
from services.storage.tenancy import Tenant

MAX_MEDIA = 10


class Outcome(StrEnum):
    """What an inbound webhook did, for the log and `campaign_webhook_events_total`."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    UNROUTED = "unrouted"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    HELP = "help"


@dataclass(frozen=True)
class Inbound:
    """The fields of Twilio's inbound webhook this service reads."""

    message_sid: str
    from_phone: str
    to: str
    body: str
    messaging_service: str | None = None
    media: tuple[str, ...] = ()
    opt_out_type: str | None = None

    @classmethod
    def from_form(cls, form: dict[str, str]) -> Inbound:
        count = _int(form.get("NumMedia"))
        media = tuple(
            url for i in range(min(count, MAX_MEDIA)) if (url := form.get(f"MediaUrl{i}"))
        )
        return cls(
            message_sid=(form.get("MessageSid") or form.get("SmsSid") or "").strip(),
            from_phone=(form.get("From") or "").strip(),
            to=(form.get("To") or "").strip(),
            body=form.get("Body") or "",
            messaging_service=(form.get("MessagingServiceSid") or "").strip() or None,
            media=media,
            opt_out_type=(form.get("OptOutType") or "").strip() or None,
        )


@dataclass
class Received:
    """The outcome, and the text to answer with (HELP), if any."""

    outcome: Outcome
    answer: str | None = None
    message_id: ObjectId | None = None
    organization_id: ObjectId | None = None
    campaign_id: ObjectId | None = None


async def receive(inbound: Inbound, settings: Settings) -> Received:
    """Stores and applies one inbound message."""
    phone = _phone(inbound.from_phone, settings.default_phone_region)
    found = await routing.route(
        to=inbound.to, messaging_service=inbound.messaging_service, phone=phone, settings=settings
    )
    if found is None:
        return Received(Outcome.UNROUTED)
    tenant = found.tenant
    org = await organization_settings(tenant, defaults_from(settings))
    contact, created = await _contact_for(tenant, phone, org.inboundContactStatus)
    if created and not found.shared:
        await remember_sender(tenant, contact.id, found.sender)
    keyword = read_keyword(
        inbound.body, opted_out=contact.optedOut, opt_out_type=inbound.opt_out_type
    )
    sends = await contact_sends(tenant, contact.id)
    # Before the message is stored: no follow-up goes out after it is.
    await followups.stop_follow_ups(
        tenant,
        contact.id,
        sends,
        followups.OPTED_OUT if keyword is Keyword.OPT_OUT else followups.REPLIED,
    )
    now = Tenant.now()
    attributable = keyword is None or keyword is Keyword.OPT_IN
    window = timedelta(days=org.attributionWindowDays)

    def choose(at: datetime) -> attribution.Attribution | None:
        return attribution.choose(sender=found.sender, at=at, window=window, sends=sends)

    choice = choose(now) if attributable else None
    message_id = ObjectId()
    message = Message(
        id=message_id,
        organizationId=tenant.organization_id,
        contactId=contact.id,
        direction=Direction.INBOUND,
        body=inbound.body,
        media=list(inbound.media),
        fromNumber=inbound.from_phone,
        toNumber=inbound.to,
        sender=found.sender,
        providerMessageId=inbound.message_sid or f"local:{message_id}",
        status=MessageStatus.RECEIVED,
        keyword=keyword.value if keyword else None,
        campaignId=choice.campaign_id if choice else None,
    )
    first = True
    try:
        await tenant.insert(message)
    except DuplicateKeyError:
        first = False
        stored = await tenant.raw_find(
            Message,
            {"providerMessageId": message.providerMessageId},
            {"_id": 1, "createdAt": 1, "campaignId": 1},
        ).to_list()
        message_id, now = stored[0]["_id"], stored[0]["createdAt"]
        if attributable:
            # Chosen as of the first delivery, which may have died before storing its choice.
            choice = choose(now)
            if choice is not None and stored[0].get("campaignId") != choice.campaign_id:
                await tenant.update_one(
                    Message, {"_id": message_id}, {"$set": {"campaignId": choice.campaign_id}}
                )
    outcome = Outcome.STORED if first else Outcome.DUPLICATE
    reason = f"Replied {normalized(inbound.body) or inbound.opt_out_type}"
    if keyword is Keyword.OPT_OUT:
        with contextlib.suppress(NotFound):
            await contact_edits.set_opt_out(tenant, str(contact.id), True, reason)
        outcome = Outcome.OPTED_OUT if first else outcome
    elif keyword is Keyword.OPT_IN:
        with contextlib.suppress(NotFound):
            await contact_edits.set_opt_out(tenant, str(contact.id), False)
        outcome = Outcome.OPTED_IN if first else outcome
    # The reply's record and its activity entry depend on the stored message, not on each other.
    after: list[Awaitable[object]] = []
    if choice is not None:
        after.append(
            attribution.record(
                tenant, choice, contact_id=contact.id, message_id=message_id, at=now, sends=sends
            )
        )
    if first:
        after.append(
            activity.append(
                tenant,
                contact_id=contact.id,
                message_id=message_id,
                direction=Direction.INBOUND,
                at=now,
            )
        )
    await asyncio.gather(*after)
    answer = None
    if keyword is Keyword.HELP:
        outcome = Outcome.HELP if first else outcome
        # Twilio's Advanced Opt-Out answered HELP itself when it says so.
        if first and org.helpText and not inbound.opt_out_type:
            answer = org.helpText
    if answer is not None:
        await _record_answer(tenant, contact.id, inbound, found.sender, answer)
    # Also after a retry: the first delivery's handler may have died before this.
    reads = summaries.Reads(templates=sends.templates(), values=contact_values(contact))
    await summaries.refresh(tenant, contact.id, reads=reads)
    campaign_id = choice.campaign_id if choice is not None else None
    return Received(outcome, answer, message_id, tenant.organization_id, campaign_id)


async def contact_for(tenant: Tenant, phone: str, status: str) -> ContactRef:
    """The organization's contact with that phone, created (source `inbound`) when new; the
    unique phone index decides between two first messages at once."""
    return (await _contact_for(tenant, phone, status))[0]


async def _contact_for(tenant: Tenant, phone: str, status: str) -> tuple[ContactRef, bool]:
    """`contact_for`, and whether the contact was new."""
    rows = await tenant.raw_find(Contact, {"phoneNumber": phone}, REF_PROJECTION).to_list()
    if rows:
        return ContactRef.from_document(rows[0]), False
    consent = {"consentSource": ConsentSource.INBOUND.value, "consentAt": Tenant.now()}
    draft = ContactDraft(phoneNumber=phone, extra={"source": "inbound", **consent})
    made = await ensure_contacts(tenant, [draft], batch_size=1, contact_status=status)
    return made[phone], True


async def _record_answer(
    tenant: Tenant, contact_id: ObjectId, inbound: Inbound, sender: str, text: str
) -> None:
    """Keeps the HELP answer (sent in the webhook's TwiML) in the thread; keyed by the
    question's id, so a retried question keeps one answer."""
    message_id = ObjectId()
    answer = Message(
        id=message_id,
        organizationId=tenant.organization_id,
        contactId=contact_id,
        direction=Direction.OUTBOUND,
        body=text,
        fromNumber=inbound.to,
        toNumber=inbound.from_phone,
        sender=sender,
        providerMessageId=f"help:{inbound.message_sid or message_id}",
        status=MessageStatus.SENT,
        keyword=Keyword.HELP.value,
    )
    with contextlib.suppress(DuplicateKeyError):
        await tenant.insert(answer)
        await activity.append(
            tenant,
            contact_id=contact_id,
            message_id=message_id,
            direction=Direction.OUTBOUND,
            at=answer.createdAt,
        )


def _phone(raw: str, region: str) -> str:
    """E.164 when it is a phone; a short code or an alphanumeric sender as given."""
    try:
        return normalize_phone(raw, region)
    except PhoneError:
        return raw.strip()


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
