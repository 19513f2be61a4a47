"""An organization's senders: the Twilio numbers and messaging services it sends from.

One sender belongs to one organization. The sender's key is the document's `_id`
(`models.conversation.sender_key`), so when two organizations claim one number the server's
duplicate key decides, never a read that both could pass. The list is replaced whole by an
admin; nothing is written when one entry is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from core.errors import FieldError, InvalidInput
from models import Sender
from models.conversation import sender_key
from services.contacts.records import PhoneError, normalize_phone
from services.inputs import SenderInput
from services.storage.tenancy import Tenant

SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class SenderEntry:
    """A sender as settings show it."""

    phoneNumber: str | None
    messagingServiceSid: str | None

    @property
    def key(self) -> str:
        return sender_key(phone=self.phoneNumber, service=self.messagingServiceSid)


async def list_senders(tenant: Tenant) -> list[SenderEntry]:
    """The organization's senders, in the order the admin gave them."""
    rows = await tenant.raw_find(Sender, {}).to_list()
    rows.sort(key=lambda row: int(row.get("position") or 0))
    return [SenderEntry(row.get("phoneNumber"), row.get("messagingServiceSid")) for row in rows]


def check_senders(
    entries: Sequence[SenderInput], region: str
) -> tuple[list[SenderEntry], list[FieldError]]:
    """Normalises the entries (phones to E.164); a repeated sender is kept once."""
    found: dict[str, SenderEntry] = {}
    errors: list[FieldError] = []
    for i, entry in enumerate(entries):
        phone = (entry.phoneNumber or "").strip()
        service = (entry.messagingServiceSid or "").strip()
        if bool(phone) == bool(service):
            message = "Give a phoneNumber or a messagingServiceSid (one of them)"
            errors.append(FieldError(("senders", i), "INVALID_SENDER", message))
            continue
        if service:
            if not SERVICE_SID.fullmatch(service):
                message = f"'{service}' is not a messaging service SID (MG and 32 hex digits)"
                path = ("senders", i, "messagingServiceSid")
                errors.append(FieldError(path, "INVALID_SENDER", message))
                continue
            sender = SenderEntry(None, service)
        else:
            try:
                sender = SenderEntry(normalize_phone(phone, region), None)
            except PhoneError as exc:
                errors.append(FieldError(("senders", i, "phoneNumber"), "INVALID_PHONE", str(exc)))
                continue
        found.setdefault(sender.key, sender)
    return list(found.values()), errors


async def replace_senders(tenant: Tenant, wanted: Sequence[SenderEntry]) -> None:
    """Makes `wanted` the organization's senders; `SENDER_TAKEN` (and nothing changed) when
    another organization owns one of them."""
    ours = {row["_id"] for row in await tenant.raw_find(Sender, {}, {"_id": 1}).to_list()}
    inserted: list[str] = []
    errors: list[FieldError] = []
    for position, sender in enumerate(wanted):
        if sender.key in ours:
            continue
        document = Sender(
            id=sender.key,
            organizationId=tenant.organization_id,
            phoneNumber=sender.phoneNumber,
            messagingServiceSid=sender.messagingServiceSid,
            position=position,
        )
        try:
            await tenant.insert(document)
        except DuplicateKeyError:
            if await tenant.raw_find(Sender, {"_id": sender.key}, {"_id": 1}).to_list():
                continue  # ours after all: another request of this organization added it
            field = "messagingServiceSid" if sender.messagingServiceSid else "phoneNumber"
            message = "Another organization already sends from this sender"
            errors.append(FieldError(("senders", position, field), "SENDER_TAKEN", message))
            continue
        inserted.append(sender.key)
    if errors:
        await tenant.delete_in(Sender, "_id", inserted)
        raise InvalidInput("Invalid organization settings", errors)
    keys = [sender.key for sender in wanted]
    await tenant.update_each(
        Sender,
        [(key, {"position": i, "updatedAt": Tenant.now()}) for i, key in enumerate(keys)],
    )
    await tenant.delete_in(Sender, "_id", sorted(ours - set(keys)))
