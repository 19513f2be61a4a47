"""A rep's message to one contact: through the same provider as campaigns, at most once.

The request is idempotent by key (`services.storage.idempotency`): a retry replays the first
message. The provider is handed the message by whoever inserts its `MessageSend` claim, so
neither a retry nor a second process sends it twice; a sender that died after claiming leaves
the message `sending` (its outcome unknown), never resent blindly.

Rate: a rep's message counts within the organization's messages a second, in a lane of its
own: it takes one of the units each second keeps for reps (`services.sending.rate_slots`)
before campaign batches can, so it never waits behind them; at most until the next second.

Quiet hours: an answer within 24 hours of the contact's own last message goes at once (they
are in a conversation); otherwise it waits for the contact's sending window, like campaigns,
and says when (`nextSendAt`); `send_due` sends the waiting ones when their window opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from core.config import Settings
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from models import Contact, Message, MessageSend
from models.base import utcnow
from models.conversation import Direction, MessageStatus
from models.recipient import DELIVERY_RANK
from services.campaigns.templates import TemplateError, parse_template
from services.contacts.suppressions import suppressed_among
from services.conversations import activity, routing, summaries
from services.conversations.threads import ThreadMessage
from services.organizations import footer as footers
from services.organizations.senders import contact_senders, list_senders
from services.organizations.settings import OrganizationSettings, opt_out_footer, send_window
from services.sending.config import DispatchConfig
from services.sending.delivery import TWILIO_STATUSES, reported
from services.sending.provider import Provider, SendError
from services.sending.rate_slots import RateSlots, RepMeter
from services.storage import idempotency
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

CONVERSATION_WINDOW = timedelta(hours=24)
"""An answer this soon after the contact's own message is not cold outreach: quiet hours do
not hold it back."""
SCOPE = "sendMessage"


@dataclass(frozen=True)
class Outgoing:
    """What a rep asked to send."""

    contact_id: str
    body: str
    idempotency_key: str


async def send_message(
    tenant: Tenant,
    request: Outgoing,
    *,
    provider: Provider,
    settings: Settings,
    defaults: OrganizationSettings,
    now: datetime | None = None,
    meter: RepMeter | None = None,
) -> ThreadMessage:
    """Sends (or schedules, in quiet hours) a rep's message; returns it as the thread shows it.

    `meter` counts it within the organization's rate (by default on the real clock, with the
    deployment's rate for organizations without their own)."""
    meter = meter or meter_from(settings)
    key = idempotency.check_key(request.idempotency_key)
    contact = await tenant.get(Contact, request.contact_id)
    if contact is None:
        raise NotFound("contact", ("contactId",))
    assert contact.id is not None
    contact_id = contact.id
    text = _render(request.body, contact)
    if contact.optedOut:
        message = "This contact opted out; it cannot be messaged until it opts back in"
        raise Conflict(message, [FieldError(("contactId",), "OPTED_OUT", message)])
    if await suppressed_among(tenant, [contact.phoneNumber]):
        message = "This number is on your suppression list; it cannot be messaged"
        raise Conflict(message, [FieldError(("contactId",), "SUPPRESSED", message)])
    sender = await _sender(tenant, settings, contact_id)
    planned = {"messageId": str(ObjectId())}

    async def work(plan: dict[str, Any], resumed: bool) -> object:
        moment = now or Tenant.now()
        message_id = ObjectId(plan["messageId"])
        waits_until = await _held_until(tenant, contact, defaults, moment)
        body = text
        footer = await opt_out_footer(tenant)
        first = bool(footer) and await footers.claim_one(
            tenant, contact_id, str(message_id), resumed=resumed
        )
        if first:
            body = footers.with_footer(text, footers.footer_for(text, footer))
        draft = Message(
            id=message_id,
            organizationId=tenant.organization_id,
            contactId=contact_id,
            direction=Direction.OUTBOUND,
            body=body,
            toNumber=contact.phoneNumber,
            sender=sender,
            providerMessageId=f"local:{message_id}",
            status=MessageStatus.WAITING if waits_until else MessageStatus.SENDING,
            sentBy=tenant.principal.user_id,
            nextSendAt=waits_until,
            firstMessage=first,
        )
        try:
            await tenant.insert(draft)
        except DuplicateKeyError:
            if not resumed:
                raise
        else:
            await activity.append(
                tenant,
                contact_id=contact_id,
                message_id=message_id,
                direction=Direction.OUTBOUND,
                at=draft.createdAt,
            )
        if waits_until is None:
            await deliver(tenant, message_id, provider, meter)
        else:
            await summaries.refresh(tenant, contact_id)
        return message_id

    async def finished(plan: dict[str, Any]) -> bool:
        rows = await tenant.raw_find(Message, {"_id": ObjectId(plan["messageId"])}).to_list()
        return bool(rows)

    outcome = await idempotency.run_once(
        tenant,
        scope=SCOPE,
        key=key,
        request={"contactId": request.contact_id, "body": request.body},
        planned=planned,
        work=work,
        finished=finished,
    )
    message_id = ObjectId(outcome.result["messageId"])
    rows = await tenant.raw_find(Message, {"_id": message_id}).to_list()
    return ThreadMessage.of_message(rows[0])


def meter_from(settings: Settings) -> RepMeter:
    """Reps' messages on the real clock, with the deployment's rate."""
    return RepMeter(
        RateSlots(utcnow, DispatchConfig.chunk), settings.dispatch_rate_per_second or None
    )


async def deliver(
    tenant: Tenant, message_id: ObjectId, provider: Provider, meter: RepMeter | None
) -> None:
    """Hands the message to the provider if this caller wins its claim, once the organization's
    rate admits it (`meter`; None: unmetered); records the answer."""
    try:
        await tenant.insert(MessageSend(id=str(message_id), organizationId=tenant.organization_id))
    except DuplicateKeyError:
        return  # someone else sends (or sent) it
    if meter is not None:
        await meter.admit(tenant)
    rows = await tenant.raw_find(Message, {"_id": message_id}).to_list()
    if not rows:
        return
    row = rows[0]
    fields: dict[str, Any]
    try:
        sid = await provider.send(
            row["toNumber"],
            row["body"],
            str(message_id),
            organization=tenant.organization_id,
            sender=row.get("sender"),
        )
    except SendError as exc:
        status = MessageStatus.UNKNOWN if exc.unknown else MessageStatus.FAILED
        fields = {"status": status.value, "errorCode": exc.code}
        if not exc.unknown and row.get("firstMessage"):
            # refused: it did not go, so the contact's next message carries the footer
            await footers.give_back(tenant, {row["contactId"]: str(message_id)})
    else:
        fields = {"status": MessageStatus.SENT.value, "providerMessageId": sid}
    fields.update(nextSendAt=None, updatedAt=Tenant.now())
    await tenant.update_one(Message, {"_id": message_id}, {"$set": fields})
    await summaries.refresh(tenant, row["contactId"])


async def send_due(
    provider: Provider, now: datetime | None = None, meter: RepMeter | None = None
) -> int:
    """Sends the waiting messages whose window has opened, in every organization (background
    discovery, as the dispatcher's), each within its organization's rate (`meter`); returns
    how many were handed over."""
    moment = now or Tenant.now()
    waiting = await Tenant.across_organizations(
        Message, {"status": MessageStatus.WAITING.value}, {"organizationId": 1, "nextSendAt": 1}
    )
    sent = 0
    for row in waiting:
        if row.get("nextSendAt") is not None and row["nextSendAt"] > moment:
            continue
        tenant = Tenant.for_organization(row["organizationId"])
        await tenant.update_one(
            Message, {"_id": row["_id"]}, {"$set": {"status": MessageStatus.SENDING.value}}
        )
        await deliver(tenant, row["_id"], provider, meter)
        sent += 1
    return sent


async def run_due(
    provider: Provider, stop: asyncio.Event, meter: RepMeter | None, every_s: float = 5.0
) -> None:
    """Sends waiting messages as their windows open, until `stop` is set (run beside the
    dispatcher, wherever it runs). A failed pass is logged and retried on the next one."""
    while not stop.is_set():
        try:
            await send_due(provider, meter=meter)
        except Exception:  # the loop outlives a bad pass; the next one retries
            logger.exception("sending waiting messages failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


async def record_status(
    message_id: str,
    status: str,
    message_sid: str | None,
    error_code: str | None,
    organization: str | None = None,
) -> bool:
    """A delivery report about a rep's message of `organization` (None: a report from before
    callbacks named it); False when no such message exists there. Only moves forward, as
    recipients' reports do."""
    delivery = TWILIO_STATUSES.get(status.strip().lower())
    if delivery is None or not ObjectId.is_valid(message_id):
        return False
    found = await reported(
        Message, ObjectId(message_id), organization, {"deliveryRank": 1, "contactId": 1}
    )
    if found is None:
        return False
    tenant, row = found
    rank = DELIVERY_RANK[delivery]
    if int(row.get("deliveryRank") or 0) >= rank:
        return True
    fields: dict[str, Any] = {"status": delivery.value, "deliveryRank": rank}
    if error_code:
        fields["errorCode"] = error_code
    if message_sid:
        fields["providerMessageId"] = message_sid
    await tenant.update_one(Message, {"_id": ObjectId(message_id)}, {"$set": fields})
    await summaries.refresh(tenant, row["contactId"])
    return True


def _render(body: str, contact: Contact) -> str:
    """The message for this contact: placeholders as in campaigns, the same missing-value rule
    (a placeholder without a value or a fallback refuses the message)."""
    if not body.strip():
        message = "Write a message"
        raise InvalidInput(message, [FieldError(("body",), "EMPTY_MESSAGE", message)])
    values = {
        "firstName": contact.firstName,
        "lastName": contact.lastName,
        "phoneNumber": contact.phoneNumber,
        "email": contact.email,
    }
    try:
        rendered = parse_template(body).render(values)
    except TemplateError as exc:
        errors = [FieldError(("body",), code, message) for code, message in exc.problems]
        raise InvalidInput("Invalid message", errors) from None
    if rendered.missing:
        names = ", ".join(rendered.missing)
        message = f"This contact has no {names}; add a fallback like {{{{firstName|there}}}}"
        raise InvalidInput(message, [FieldError(("body",), "MISSING_VALUE", message)])
    return rendered.text


async def _sender(tenant: Tenant, settings: Settings, contact_id: ObjectId) -> str | None:
    """The contact's sender (the one its campaigns came from), else the deployment's; refused
    when neither exists."""
    own = [entry.key for entry in await list_senders(tenant)]
    if own:
        return (await contact_senders(tenant, own, [contact_id]))[contact_id]
    shared = routing.shared_sender(settings)
    if shared is None and settings.dispatch_provider == "twilio":
        message = "Your organization has no sender; an admin adds one in the settings"
        raise Conflict(message, [FieldError(("contactId",), "NO_SENDER", message)])
    return shared  # None: the log or simulated provider, which need no number


async def _held_until(
    tenant: Tenant, contact: Contact, defaults: OrganizationSettings, now: datetime
) -> datetime | None:
    """None when it may go now; else when the contact's window opens."""
    assert contact.id is not None
    rows = await tenant.raw_find(
        Message, {"contactId": contact.id}, {"direction": 1, "createdAt": 1}
    ).to_list()
    last_in = max(
        (r["createdAt"] for r in rows if r.get("direction") == Direction.INBOUND), default=None
    )
    if last_in is not None and now - _aware(last_in) <= CONVERSATION_WINDOW:
        return None
    window = await send_window(tenant, defaults)
    if window.is_open(contact.phoneNumber, now):
        return None
    opens = window.next_opening(contact.phoneNumber, now)
    if opens is None:
        message = window.never_opens(contact.phoneNumber)
        raise Conflict(message, [FieldError(("contactId",), "NO_SENDING_WINDOW", message)])
    return opens


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
