"""A reply's campaign: the latest one that messaged the contact from the sender the reply came
in on, within the organization's attribution window. It is chosen before the reply is stored
(the message is written with its campaign) and recorded after.

The first reply to a campaign inserts a `Reply` record (`_id` = campaign and contact), and
that insert decides everything that happens once: the recipient becomes `replied`, and the
contact moves to the campaign's `contactStatusOnReply`. A campaign's `replied` is the count
of its records, so no counter is ever written by two requests at once.

A recipient sent before the dispatcher recorded senders has none: it is read as sent from any
sender of its organization.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from core.errors import NotFound
from models import Contact, Recipient, Reply
from models.recipient import RecipientStatus
from services.sending.contact_sends import ContactSends
from services.storage import history
from services.storage.history import Planned
from services.storage.tenancy import Tenant

MARK_ATTEMPTS = 3


@dataclass(frozen=True)
class Attribution:
    """The campaign a reply answers: its recipient record and the step the contact last got."""

    campaign_id: ObjectId
    recipient: dict[str, Any]
    step: int


def choose(
    *,
    sender: str,
    at: datetime,
    window: timedelta,
    sends: ContactSends,
) -> Attribution | None:
    """The campaign a reply received `at` answers (None when no campaign of the window
    messaged the contact from `sender`); it writes nothing, so the reply is stored with it.
    `sends` may be read before the reply is stored: a message recorded as sent after that
    could not have been what the contact read."""
    rows = sends.recipients
    since = at - window
    # A follow-up step is a later message of the same recipient: the window counts from the
    # last one sent.
    steps = sends.steps
    last: dict[ObjectId, tuple[datetime, int]] = {}
    for row in rows:
        went: datetime | None = row.get("sentAt")
        if went is None or went > at or row.get("status") != RecipientStatus.SENT:
            continue
        if row.get("sender") in (None, sender):
            last[row["_id"]] = (went, 0)
    for step in steps:
        went = step.get("sentAt")
        if step.get("status") != "sent" or went is None or went > at:
            continue
        if step.get("sender") in (None, sender) and step["recipientId"] in last:
            last[step["recipientId"]] = max(last[step["recipientId"]], (went, int(step["step"])))
    candidates = [row for row in rows if row["_id"] in last and last[row["_id"]][0] >= since]
    if not candidates:
        return None
    latest = max(candidates, key=lambda row: (last[row["_id"]], row["_id"]))
    return Attribution(latest["campaignId"], latest, last[latest["_id"]][1])


async def record(
    tenant: Tenant,
    choice: Attribution,
    *,
    contact_id: ObjectId,
    message_id: ObjectId,
    at: datetime,
    sends: ContactSends,
) -> None:
    """Records the stored reply `message_id` (received `at`) as the contact's answer to the
    chosen campaign. Repeating it changes nothing."""
    reply = Reply(
        id=f"{choice.campaign_id}:{contact_id}",
        organizationId=tenant.organization_id,
        campaignId=choice.campaign_id,
        contactId=contact_id,
        recipientId=choice.recipient["_id"],
        messageId=message_id,
        repliedAt=at,
        step=choice.step,
    )
    first = True
    try:
        await tenant.insert(reply)
    except DuplicateKeyError:
        first = False
        found = await tenant.raw_find(Reply, {"_id": reply.id}).to_list()
        if found:
            reply.recipientId, reply.repliedAt = found[0]["recipientId"], found[0]["repliedAt"]
    if first or not choice.recipient.get("replied"):
        # Also after a duplicate: the first reply's writer may have died before this.
        await _mark_recipient(tenant, reply.recipientId, reply.repliedAt)
    if first:
        await _move_contact(tenant, sends.campaigns.get(choice.campaign_id), contact_id)


async def _mark_recipient(tenant: Tenant, recipient_id: ObjectId, at: datetime) -> None:
    """Sets `replied` on the recipient and checks it held: on FerretDB a delivery report
    written at the same moment rewrites the whole document and may undo it."""
    for _ in range(MARK_ATTEMPTS):
        await tenant.update_one(
            Recipient, {"_id": recipient_id}, {"$set": {"replied": True, "repliedAt": at}}
        )
        found = await tenant.raw_find(Recipient, {"_id": recipient_id}, {"replied": 1}).to_list()
        if not found or found[0].get("replied"):
            return


async def _move_contact(
    tenant: Tenant, campaign: dict[str, Any] | None, contact_id: ObjectId
) -> None:
    """Moves the contact to the campaign's `contactStatusOnReply`, if it has one."""
    status = campaign.get("contactStatusOnReply") if campaign else None
    if not status:
        return

    async def plan(contact: Contact) -> Planned:
        changed: dict[str, Any] = (
            {} if contact.contactStatus == status else {"contactStatus": status}
        )
        return Planned("reply", changed)

    with contextlib.suppress(NotFound):
        await history.change(tenant, Contact, str(contact_id), plan, what="contact")
