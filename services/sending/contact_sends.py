"""What one contact was sent by the organization's campaigns: its recipient records and those
campaigns, read once by an inbound message for the rules that all need them (stopping
follow-ups, attributing the reply, moving the contact, rendering the thread).

Each of those rules could read them itself; on the webhook path that was three reads of the
same recipients and three of the same campaigns per reply, on a server where every command
costs about the same whatever it returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from models import Campaign, Recipient, StepSend
from services.storage.tenancy import Tenant

RECIPIENT_FIELDS = {
    "campaignId": 1,
    "batch": 1,
    "sentAt": 1,
    "status": 1,
    "sender": 1,
    "replied": 1,
}
CAMPAIGN_FIELDS = {"status": 1, "followUps": 1, "message": 1, "contactStatusOnReply": 1}
STEP_FIELDS = {"recipientId": 1, "step": 1, "status": 1, "sentAt": 1, "sender": 1}


@dataclass(frozen=True)
class ContactSends:
    """A contact's recipient records (`RECIPIENT_FIELDS`), their campaigns by id
    (`CAMPAIGN_FIELDS`) and its follow-up step records (`STEP_FIELDS`)."""

    recipients: list[dict[str, Any]] = field(default_factory=list)
    campaigns: dict[ObjectId, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def templates(self) -> dict[ObjectId, list[str]]:
        """Each campaign's texts by id (`campaign_texts`)."""
        return {campaign_id: campaign_texts(row) for campaign_id, row in self.campaigns.items()}


def campaign_texts(campaign: dict[str, Any]) -> list[str]:
    """A campaign's texts as its steps send them: its message, then its follow-ups'."""
    return [
        campaign.get("message") or "",
        *(step.get("message") or "" for step in campaign.get("followUps") or []),
    ]


async def contact_sends(tenant: Tenant, contact_id: ObjectId) -> ContactSends:
    """Reads them: the contact's records by equality, then their campaigns by id and the
    contact's steps at once."""
    rows = await tenant.raw_find(Recipient, {"contactId": contact_id}, RECIPIENT_FIELDS).to_list()
    if not rows:
        return ContactSends()
    ids = list({row["campaignId"] for row in rows})
    campaigns, steps = await asyncio.gather(
        tenant.raw_find_in(Campaign, "_id", ids, CAMPAIGN_FIELDS),
        tenant.raw_find(StepSend, {"contactId": contact_id}, STEP_FIELDS).to_list(),
    )
    return ContactSends(rows, {row["_id"]: row for row in campaigns}, steps)
