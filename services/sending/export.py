"""A campaign's recipients as CSV rows: who got the message, who did not, and why (in the
failure report's plain words, `services.sending.failures`)."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from models import Campaign, Recipient
from models.recipient import RECIPIENT_BATCH, DeliveryStatus, RecipientStatus
from services.contacts.records import contacts_of_rows
from services.sending.failures import reason_for
from services.storage.csvout import Cell, Export
from services.storage.streams import in_order
from services.storage.tenancy import Tenant

RECIPIENT_COLUMNS = (
    "recipientId",
    "contactId",
    "firstName",
    "lastName",
    "phoneNumber",
    "status",
    "sentAt",
    "deliveryStatus",
    "deliveredAt",
    "failedAt",
    "errorCode",
    "errorReason",
    "replied",
    "repliedAt",
)
"""`errorCode` is the sender's code, else the carrier's, and `errorReason` says it in plain
words; `failedAt` is when sending failed or the carrier reported it undelivered. A deleted
contact leaves its name and phone empty."""

RECIPIENT_FIELDS = {
    "contactId": 1,
    "contactPage": 1,
    "seq": 1,
    "status": 1,
    "sentAt": 1,
    "updatedAt": 1,
    "deliveryStatus": 1,
    "deliveryErrorCode": 1,
    "deliveryUpdatedAt": 1,
    "errorCode": 1,
    "error": 1,
    "replied": 1,
    "repliedAt": 1,
}
CONTACT_FIELDS = {"firstName": 1, "lastName": 1, "phoneNumber": 1}
CARRIER_FAILURES = {DeliveryStatus.UNDELIVERED.value, DeliveryStatus.FAILED.value}
LOST = {s.value for s in (RecipientStatus.FAILED, RecipientStatus.SKIPPED, RecipientStatus.UNKNOWN)}


async def export_recipients(tenant: Tenant, campaign_id: str) -> Export:
    """Returns the campaign's recipients in campaign order, as a stream of pages.

    Raises `NotFound` before the first row for an unknown id (or another organization's).
    Each batch is one `{organizationId, campaignId, batch}` equality read, and its contacts a
    page read or two (`contacts_of_rows`); a few batches are read ahead.
    """
    campaign = await tenant.get(Campaign, campaign_id)
    if campaign is None or campaign.id is None:
        raise NotFound("campaign")
    where = {"campaignId": campaign.id}

    async def read(batch: int) -> list[list[Cell]]:
        query = {**where, "batch": batch}
        rows = await tenant.raw_find(Recipient, query, RECIPIENT_FIELDS).to_list()
        rows.sort(key=lambda row: row["seq"])
        contacts = await contacts_of_rows(tenant, rows, CONTACT_FIELDS)
        return [recipient_row(row, contacts.get(row["contactId"], {})) for row in rows]

    batches = range((campaign.nextSeq + RECIPIENT_BATCH - 1) // RECIPIENT_BATCH)
    return Export(RECIPIENT_COLUMNS, in_order(read, batches))


def recipient_row(row: dict[str, Any], contact: dict[str, Any]) -> list[Cell]:
    """Returns a stored recipient's cells in `RECIPIENT_COLUMNS` order."""
    status, delivery = row.get("status"), row.get("deliveryStatus")
    failed_at = None
    if status == RecipientStatus.FAILED.value:
        failed_at = row.get("updatedAt")
    elif delivery in CARRIER_FAILURES:
        failed_at = row.get("deliveryUpdatedAt")
    delivered_at = (
        row.get("deliveryUpdatedAt") if delivery == DeliveryStatus.DELIVERED.value else None
    )
    code = row.get("errorCode") or row.get("deliveryErrorCode")
    if status == RecipientStatus.UNKNOWN.value:
        code = code or "OUTCOME_UNKNOWN"
    failed = status in LOST or delivery in CARRIER_FAILURES
    reason = (reason_for(code).text if code else row.get("error")) if failed else None
    return [
        str(row["_id"]),
        str(row["contactId"]),
        contact.get("firstName"),
        contact.get("lastName"),
        contact.get("phoneNumber"),
        status,
        row.get("sentAt"),
        delivery,
        delivered_at,
        failed_at,
        code if failed else None,
        reason,
        bool(row.get("replied", False)),
        row.get("repliedAt"),
    ]
