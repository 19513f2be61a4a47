"""Contact queries."""

from __future__ import annotations

import strawberry

from resolvers.context import Info, IsAuthenticated
from schema.contacts import Contact
from services import contacts as contact_service


@strawberry.type
class ContactQueries:
    @strawberry.field(
        description="A contact of the caller's organization by id; null when there is none "
        "(another organization's contacts do not exist here).",
        permission_classes=[IsAuthenticated],
    )
    async def contact(self, info: Info, id: strawberry.ID) -> Contact | None:
        found = await contact_service.get_contact(principal=info.context.principal, contact_id=id)
        return Contact.from_document(found) if found else None
