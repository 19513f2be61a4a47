"""The organization's settings: read by every member, changed by admins."""

from __future__ import annotations

from dataclasses import asdict

import strawberry
from strawberry.permission import BasePermission

from resolvers.payloads import user_errors
from schema.context import Info, IsAuthenticated
from schema.derive import to_command
from schema.organizations import (
    OrganizationSettings,
    OrganizationSettingsPayload,
    Sender,
    UpdateOrganizationSettingsInput,
)
from services.organizations import senders as organization_senders
from services.organizations import settings as organizations
from services.storage.tenancy import Tenant

AUTH: list[type[BasePermission]] = [IsAuthenticated]


async def _out(tenant: Tenant, found: organizations.OrganizationSettings) -> OrganizationSettings:
    senders = [
        Sender(phoneNumber=s.phoneNumber, messagingServiceSid=s.messagingServiceSid)
        for s in await organization_senders.list_senders(tenant)
    ]
    return OrganizationSettings(**asdict(found), senders=senders)


@strawberry.type
class OrganizationQueries:
    @strawberry.field(
        description="Your organization's sending window and time zone.", permission_classes=AUTH
    )
    async def organization_settings(self, info: Info) -> OrganizationSettings:
        context = info.context
        found = await organizations.organization_settings(
            context.tenant, organizations.defaults_from(context.settings)
        )
        return await _out(context.tenant, found)


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(
        description="Changes the sending window or time zone (admins only). Recipients outside "
        "the window wait for it to open; campaigns say when in `nextSendAt`.",
        permission_classes=AUTH,
    )
    @user_errors
    async def update_organization_settings(
        self, info: Info, input: UpdateOrganizationSettingsInput
    ) -> OrganizationSettingsPayload:
        context = info.context
        data = to_command(input, "settings")
        found = await organizations.update_settings(
            context.tenant,
            organizations.defaults_from(context.settings),
            data,
            phone_region=context.settings.default_phone_region,
        )
        return OrganizationSettingsPayload(settings=await _out(context.tenant, found))
