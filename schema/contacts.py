"""GraphQL types for contacts."""

from __future__ import annotations

from datetime import datetime

import strawberry

from models import Contact as ContactDocument


@strawberry.type(description="A person campaigns can message.")
class Contact:
    id: strawberry.ID = strawberry.field(description="The contact's id.")
    first_name: str = strawberry.field(description="Given name; may be empty.")
    last_name: str = strawberry.field(description="Family name; may be empty.")
    phone_number: str = strawberry.field(description="E.164, unique in the organization.")
    email: str | None = strawberry.field(description="Email address.")
    contact_status: str | None = strawberry.field(description="Pipeline stage, e.g. New Lead.")
    process: str | None = strawberry.field(description="Pipeline id.")
    tags: list[str] = strawberry.field(description="Free-form labels used by segments.")
    assigned_to: strawberry.ID | None = strawberry.field(description="The rep who owns it.")
    opted_out: bool = strawberry.field(description="Never messaged when true.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    @classmethod
    def from_document(cls, doc: ContactDocument) -> Contact:
        """Maps a stored contact to the GraphQL type."""
        return cls(
            id=strawberry.ID(str(doc.id)),
            first_name=doc.firstName,
            last_name=doc.lastName,
            phone_number=doc.phoneNumber,
            email=doc.email,
            contact_status=doc.contactStatus,
            process=doc.process,
            tags=list(doc.tags),
            assigned_to=strawberry.ID(str(doc.assignedTo)) if doc.assignedTo else None,
            opted_out=doc.optedOut,
            created_at=doc.createdAt,
            updated_at=doc.updatedAt,
        )
