"""A reply's campaign: the latest one that messaged the contact from the sender the reply came
in on, within the organization's attribution window.

The first reply to a campaign inserts a `Reply` record (`_id` = campaign and contact), and
that insert decides everything that happens once: the recipient becomes `replied`, and the
contact moves to the campaign's `contactStatusOnReply`. A campaign's `replied` is the count
of its records, so no counter is ever written by two requests at once.

A recipient sent before the dispatcher recorded senders has none: it is read as sent from any
sender of its organization.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from core.errors import NotFound
from models import Contact, Recipient, Reply, StepSend
from models.recipient import RecipientStatus
from services.sending.contact_sends import ContactSends, contact_sends
from services.storage import history
from services.storage.history import Planned
from services.storage.tenancy import Tenant

MARK_ATTEMPTS = 3


async def attribute(
    tenant: Tenant,
    *,
    contact_id: ObjectId,
    sender: str,
    message_id: ObjectId,
    at: datetime,
    window: timedelta,
    sends: ContactSends | None = None,
) -> ObjectId | None:
    """Attributes a reply received `at`; returns its campaign (None when no campaign of the
    window messaged the contact from `sender`). Repeating it changes nothing. `sends` are the
    contact's records when the caller read them already (before storing the reply is soon
    enough: a message recorded as sent after that could not have been what the contact read)."""
    if sends is None:
        sends = await contact_sends(tenant, contact_id)
    rows = sends.recipients
    since = at - window
    # A follow-up step is a later message of the same recipient: the window counts from the
    # last one sent (one equality read of the contact's step records).
    steps = await tenant.raw_find(
        StepSend,
        {"contactId": contact_id},
        {"recipientId": 1, "step": 1, "status": 1, "sentAt": 1, "sender": 1},
    ).to_list()
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
    campaign_id: ObjectId = latest["campaignId"]
    reply = Reply(
        id=f"{campaign_id}:{contact_id}",
        organizationId=tenant.organization_id,
        campaignId=campaign_id,
        contactId=contact_id,
        recipientId=latest["_id"],
        messageId=message_id,
        repliedAt=at,
        step=last[latest["_id"]][1],
    )
    first = True
    try:
        await tenant.insert(reply)
    except DuplicateKeyError:
        first = False
        found = await tenant.raw_find(Reply, {"_id": reply.id}).to_list()
        if found:
            reply.recipientId, reply.repliedAt = found[0]["recipientId"], found[0]["repliedAt"]
    if first or not latest.get("replied"):
        # Also after a duplicate: the first reply's writer may have died before this.
        await _mark_recipient(tenant, reply.recipientId, reply.repliedAt)
    if first:
        await _move_contact(tenant, sends.campaigns.get(campaign_id), contact_id)
    return campaign_id


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
