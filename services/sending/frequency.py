"""The frequency cap: at most N campaign messages per contact per rolling 24 hours, across all
of an organization's campaigns (N is the organization's cap, or its state's when lower).

Each campaign message to a contact takes the next number of that contact's dense sequence of
sends by inserting `ContactSend` `"<contact>:<n>"`: the unique primary key gives each number to
one sender, however many dispatchers send to the contact at once. Number n may be taken only
when send n - N (fixed once written) is more than 24 hours old, so the (N+1)-th message within
24 hours can never be claimed, exactly, without a counter two writers would share. A claim
that loses the insert learns the sequence's end (`services.storage.sequences`) and tries the
next number. Each process remembers the last number it saw per contact, so a warm claim is one
insert (and one read once the contact has had N messages).

A send records the message's idempotency key (unique): a holder that takes a unit over after a
crash finds the messages its predecessor had claimed and does not count them twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from models import ContactSend
from services.organizations.state_rules import rule_for
from services.storage.sequences import last_claimed
from services.storage.tenancy import Tenant

DAY = timedelta(hours=24)
ATTEMPTS = 5
HINTS_MAX = 100_000


def cap_for(phone: str | None, organization_cap: int | None) -> int | None:
    """The cap that applies to a number: the organization's, or its state's when lower."""
    rule = rule_for(phone) if phone else None
    caps = [c for c in (organization_cap, rule.daily_cap if rule else None) if c]
    return min(caps, default=None)


class FrequencyCap:
    """One process's claims on contacts' send sequences."""

    def __init__(self) -> None:
        self._last: dict[ObjectId, int] = {}

    async def claim(
        self,
        tenant: Tenant,
        messages: Mapping[str, tuple[ObjectId, int | None]],
        now: datetime,
        campaign_id: ObjectId,
        *,
        resumed: bool,
    ) -> dict[str, datetime]:
        """Claims a send for each message (by its idempotency key: its contact and the cap
        that applies) whose cap allows one now; returns the keys held back, each with when
        its contact's cap frees a send. `resumed`: a holder before this one may have claimed
        some of them already."""
        keys = [key for key, (_, cap) in messages.items() if cap]
        claimed: set[str] = set()
        if resumed and keys:
            found = await tenant.raw_find_in(ContactSend, "key", keys, {"key": 1})
            claimed = {row["key"] for row in found}
        results = await asyncio.gather(
            *(
                self._claim_one(tenant, key, *messages[key], now, campaign_id)
                for key in keys
                if key not in claimed
            )
        )
        wanted = [key for key in keys if key not in claimed]
        return {key: until for key, until in zip(wanted, results, strict=True) if until}

    async def _claim_one(
        self,
        tenant: Tenant,
        key: str,
        contact_id: ObjectId,
        cap: int | None,
        now: datetime,
        campaign_id: ObjectId,
    ) -> datetime | None:
        if not cap:
            return None
        number = self._last.get(contact_id, -1) + 1
        for _ in range(ATTEMPTS):
            if number >= cap:
                earlier = await tenant.raw_find(
                    ContactSend, {"_id": send_id(contact_id, number - cap)}, {"at": 1}
                ).to_list()
                if earlier and earlier[0]["at"] > now - DAY:
                    # It may be an old number (a stale hint): the insert below would then
                    # fail and the end be learnt; a hold is only decided on the real end.
                    if await self._is_end(tenant, contact_id, number - 1):
                        until: datetime = earlier[0]["at"] + DAY
                        return until
                    number = await self._end(tenant, contact_id, number - 1) + 1
                    continue
            record = ContactSend(
                id=send_id(contact_id, number),
                organizationId=tenant.organization_id,
                contactId=contact_id,
                n=number,
                at=now,
                campaignId=campaign_id,
                key=key,
            )
            try:
                await tenant.insert(record)
            except DuplicateKeyError:
                if await tenant.raw_find(ContactSend, {"key": key}, {"_id": 1}).to_list():
                    return None  # this message's send was claimed already
                number = await self._end(tenant, contact_id, number) + 1
                continue
            self._remember(contact_id, number)
            return None
        return now + timedelta(seconds=1)  # contended: look again in a moment

    async def _is_end(self, tenant: Tenant, contact_id: ObjectId, number: int) -> bool:
        return not await _exists(tenant, contact_id, number + 1)

    async def _end(self, tenant: Tenant, contact_id: ObjectId, known: int) -> int:
        async def exists(n: int) -> bool:
            return await _exists(tenant, contact_id, n)

        end = await last_claimed(exists, known)
        self._remember(contact_id, end)
        return end

    def _remember(self, contact_id: ObjectId, number: int) -> None:
        if len(self._last) >= HINTS_MAX:
            self._last.clear()
        self._last[contact_id] = number


async def _exists(tenant: Tenant, contact_id: ObjectId, number: int) -> bool:
    if number < 0:
        return True
    found = await tenant.raw_find(
        ContactSend, {"_id": send_id(contact_id, number)}, {"_id": 1}
    ).to_list()
    return bool(found)


def send_id(contact_id: ObjectId, number: int) -> str:
    return f"{contact_id}:{number}"
