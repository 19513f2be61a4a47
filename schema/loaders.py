"""Per-request batch loaders: one database command per kind of thing a query asks for.

A list of 100 campaigns that shows each one's creator and first recipients with their
contacts costs one command for the campaigns and one for the creators, and reads recipients
and contacts as `Tenant.raw_find_in` does (`$in` commands of a bounded length), never a command
per campaign (tested with a command listener). Loaders
live in the request's context, so nothing is cached across requests or tenants.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from beanie import PydanticObjectId
from strawberry.dataloader import DataLoader

from core.config import Settings
from models import Campaign, Contact, User
from services.campaigns.queries import RecipientsPage, first_recipients
from services.storage.tenancy import Tenant


@dataclass(eq=False)
class RecipientsKey:
    """The first `first` recipients of `campaign`; the campaign rides along for its counters."""

    campaign: Campaign
    first: int | None

    @property
    def cache_key(self) -> tuple[str, int | None]:
        return (str(self.campaign.id), self.first)


@dataclass
class Loaders:
    """The loaders of one request, bound to its tenant."""

    tenant: Tenant
    settings: Settings
    users: DataLoader[PydanticObjectId, str | None] = field(init=False)
    contacts: DataLoader[PydanticObjectId, Contact | None] = field(init=False)
    first_recipients: DataLoader[RecipientsKey, RecipientsPage] = field(init=False)

    def __post_init__(self) -> None:
        self.users = DataLoader(load_fn=self._users)
        # The caller's own name is in the verified token, which is where user records get
        # it from: a rep reading their own campaigns costs no `users` query.
        principal = self.tenant.principal
        self.users.prime(PydanticObjectId(principal.user_id), principal.full_name)
        self.contacts = DataLoader(load_fn=self._contacts)
        self.first_recipients = DataLoader(
            load_fn=self._first_recipients, cache_key_fn=lambda key: key.cache_key
        )

    async def _users(self, ids: Sequence[PydanticObjectId]) -> list[str | None]:
        rows = await self.tenant.raw_find_in(User, "userId", ids, {"userId": 1, "fullName": 1})
        names = {row["userId"]: row.get("fullName") for row in rows}
        return [names.get(i) for i in ids]

    async def _contacts(self, ids: Sequence[PydanticObjectId]) -> list[Contact | None]:
        rows = await self.tenant.raw_find_in(Contact, "_id", ids)
        found = {row["_id"]: Contact.model_validate(row) for row in rows}
        return [found.get(i) for i in ids]

    async def _first_recipients(self, keys: Sequence[RecipientsKey]) -> list[RecipientsPage]:
        by_size: dict[int | None, list[RecipientsKey]] = defaultdict(list)
        for key in keys:
            by_size[key.first].append(key)
        pages: dict[tuple[str, int | None], RecipientsPage] = {}
        for first, group in by_size.items():
            campaigns = [k.campaign for k in group]
            for key, page in zip(
                group,
                await first_recipients(self.tenant, self.settings, campaigns, first),
                strict=True,
            ):
                pages[key.cache_key] = page
        return [pages[k.cache_key] for k in keys]
