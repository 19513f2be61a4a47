"""Contact queries and mutations: parse, call a service, shape the answer."""

from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission

from core.errors import NotFound
from models import Contact as ContactDocument
from resolvers.payloads import user_errors
from schema.contacts import (
    Contact,
    ContactFilter,
    ContactPayload,
    CreateContactInput,
    DeleteContactPayload,
    UpdateContactInput,
)
from schema.context import Info, IsAuthenticated
from schema.derive import to_command
from schema.outputs import ContactOut
from schema.pagination import Connection
from services.contacts import edits as contact_edits
from services.contacts import queries as contact_queries

AUTH: list[type[BasePermission]] = [IsAuthenticated]


@strawberry.type
class ContactQueries:
    @strawberry.field(
        description="A contact of the caller's organization by id; null when there is none "
        "(another organization's contacts do not exist here).",
        permission_classes=AUTH,
    )
    async def contact(self, info: Info, id: strawberry.ID) -> Contact | None:
        try:
            found = await contact_queries.get_contact(info.context.tenant, id)
        except NotFound:
            return None
        return ContactOut.of(found)  # type: ignore[return-value]

    @strawberry.field(
        description="Contacts in the order they were created; at most 100 per page.",
        permission_classes=AUTH,
    )
    async def contacts(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: ContactFilter | None = None,
    ) -> Connection[Contact]:
        context = info.context
        filter_command = to_command(filter, "filter") if filter else None
        page = await contact_queries.list_contacts(
            context.tenant, context.settings, filter=filter_command, first=first, after=after
        )

        async def count() -> int:
            return await contact_queries.count_contacts(
                context.tenant, context.settings, filter_command
            )

        return Connection.of(page, ContactOut.of, count)


@strawberry.type
class ContactMutations:
    @strawberry.mutation(
        description="Creates a contact; a phone another contact has is DUPLICATE_PHONE.",
        permission_classes=AUTH,
    )
    @user_errors
    async def create_contact(self, info: Info, input: CreateContactInput) -> ContactPayload:
        created = await contact_edits.create_contact(
            info.context.tenant,
            to_command(input, "contact"),
            info.context.settings,
        )
        return _payload(created)

    @strawberry.mutation(
        description="Changes the fields given of a contact.", permission_classes=AUTH
    )
    @user_errors
    async def update_contact(
        self, info: Info, id: strawberry.ID, input: UpdateContactInput
    ) -> ContactPayload:
        updated = await contact_edits.update_contact(
            info.context.tenant,
            id,
            to_command(input, "contact"),
            info.context.settings,
        )
        return _payload(updated)

    @strawberry.mutation(
        description="Deletes a contact; campaigns that messaged it keep their history.",
        permission_classes=AUTH,
    )
    @user_errors
    async def delete_contact(self, info: Info, id: strawberry.ID) -> DeleteContactPayload:
        deleted = await contact_edits.delete_contact(info.context.tenant, id)
        return DeleteContactPayload(deletedId=strawberry.ID(deleted))

    @strawberry.mutation(
        description="Records that a contact asked not to be messaged (when, and why).",
        permission_classes=AUTH,
    )
    @user_errors
    async def opt_out_contact(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> ContactPayload:
        return _payload(await contact_edits.set_opt_out(info.context.tenant, id, True, reason))

    @strawberry.mutation(
        description="Records that a contact may be messaged again.", permission_classes=AUTH
    )
    @user_errors
    async def opt_in_contact(self, info: Info, id: strawberry.ID) -> ContactPayload:
        return _payload(await contact_edits.set_opt_out(info.context.tenant, id, False))


def _payload(contact: ContactDocument) -> ContactPayload:
    return ContactPayload(contact=ContactOut.of(contact))  # type: ignore[arg-type]
