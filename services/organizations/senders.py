"""An organization's senders: the Twilio numbers and messaging services it sends from.

One sender belongs to one organization. The sender's key is the document's `_id`
(`models.conversation.sender_key`), so when two organizations claim one number the server's
duplicate key decides, never a read that both could pass. The list is replaced whole by an
admin; nothing is written when one entry is refused.

A contact keeps hearing from one sender: the first one it was sent from is stored
(`ContactSender`) and used while the organization still owns it, so adding or reordering senders
moves nobody; only a contact whose sender was removed gets a new one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from core.errors import FieldError, InvalidInput
from models import ContactSender, Sender
from models.conversation import sender_key
from services.contacts.records import PhoneError, normalize_phone
from services.inputs import SenderInput
from services.storage.tenancy import DUPLICATE_KEY, Tenant

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


def pick_sender(senders: Sequence[str], contact_id: ObjectId) -> str | None:
    """The sender for a contact that has none stored yet (none when the organization has
    none): spread by the contact's id, so two first sends with the same list pick the same."""
    if not senders:
        return None
    return senders[int(str(contact_id), 16) % len(senders)]


MOVES_FOLLOWED = 8
"""Removed senders followed for one contact before picking afresh (a guard; one is usual)."""


async def contact_senders(
    tenant: Tenant, senders: Sequence[str], contact_ids: Sequence[ObjectId]
) -> dict[ObjectId, str | None]:
    """The sender each contact hears from: its stored one while the organization still owns it,
    else a new pick, stored. `senders` is the organization's list (`list_senders`' keys); with
    none, every contact gets None (the deployment's sender) and nothing is stored.

    Every choice is an insert, never an update: the first under `"<org>:<contact>"`, and when
    that sender was removed, the move under `"<org>:<contact>><removed sender>"`, and so on.
    An insert is what the server decides alone on every backend (a conditional update is not a
    compare-and-swap on FerretDB), so when two sends race the loser's duplicate key makes it
    read the winner's choice back and both use one sender."""
    unique = list(dict.fromkeys(contact_ids))
    if not senders:
        return dict.fromkeys(unique)
    owned = set(senders)
    base = {cid: f"{tenant.organization_id}:{cid}" for cid in unique}
    key = dict(base)
    chosen: dict[ObjectId, str | None] = {}
    for _ in range(MOVES_FOLLOWED):
        if not key:
            break
        owner = {k: cid for cid, k in key.items()}
        rows = await tenant.raw_find_in(ContactSender, "_id", list(owner), {"sender": 1})
        stored = {owner[row["_id"]]: str(row.get("sender")) for row in rows}
        fresh: list[dict[str, Any]] = []
        for cid in list(key):
            old = stored.get(cid)
            if old in owned:
                chosen[cid] = old
                del key[cid]
            elif old is not None:
                key[cid] = f"{base[cid]}>{old}"  # its sender was removed: follow the move
            else:
                pick = pick_sender(senders, cid)
                fresh.append({"_id": key[cid], "contactId": cid, "sender": pick})
        lost: set[int] = set()
        try:
            await tenant.raw_insert_many(ContactSender, fresh, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            lost = {int(error["index"]) for error in errors}
        for i, doc in enumerate(fresh):
            if i not in lost:  # ours; a lost one is read back on the next turn
                chosen[doc["contactId"]] = doc["sender"]
                del key[doc["contactId"]]
    for cid in key:
        chosen[cid] = pick_sender(senders, cid)
    return chosen


async def remember_sender(tenant: Tenant, contact_id: ObjectId, sender: str) -> None:
    """Makes `sender` the contact's when it has none yet: a contact that texted one of the
    organization's numbers first hears back from that number."""
    key = f"{tenant.organization_id}:{contact_id}"
    document = ContactSender(
        id=key, organizationId=tenant.organization_id, contactId=contact_id, sender=sender
    )
    with contextlib.suppress(DuplicateKeyError):
        await tenant.insert(document)


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
