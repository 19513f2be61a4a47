"""GraphQL types for contacts; they read the attributes of `schema.outputs.ContactOut`."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.conversations import Message, contact_messages
from schema.errors import Payload
from schema.pagination import Connection


@strawberry.type(description="A person campaigns can message.")
class Contact:
    id: strawberry.ID = strawberry.field(description="The contact's id.")
    firstName: str = strawberry.field(description="Given name; may be empty.")
    lastName: str = strawberry.field(description="Family name; may be empty.")
    phoneNumber: str = strawberry.field(description="E.164, unique in the organization.")
    email: str | None = strawberry.field(description="Email address.")
    contactStatus: str | None = strawberry.field(description="Pipeline stage, e.g. New Lead.")
    process: str | None = strawberry.field(description="Pipeline id.")
    tags: list[str] = strawberry.field(description="Free-form labels used by segments.")
    assignedTo: strawberry.ID | None = strawberry.field(description="The rep who owns it.")
    optedOut: bool = strawberry.field(description="Never messaged while true.")
    optedOutAt: datetime | None = strawberry.field(description="When the contact opted out.")
    optOutReason: str | None = strawberry.field(description="Why, as recorded.")
    createdAt: datetime = strawberry.field(description="Creation time (UTC).")
    updatedAt: datetime = strawberry.field(description="Last change (UTC).")
    messages: Connection[Message] = strawberry.field(
        resolver=contact_messages,
        description="The thread both ways, newest first (campaign sends included); "
        "`after: endCursor` continues with older messages, as Apollo's fetchMore would.",
    )


@strawberry.input(description="A new contact.")
class CreateContactInput:
    phoneNumber: str = strawberry.field(description="Any format; stored as E.164; unique.")
    firstName: str | None = strawberry.UNSET
    lastName: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    contactStatus: str | None = strawberry.field(
        default=strawberry.UNSET, description="Pipeline stage."
    )
    process: str | None = strawberry.field(default=strawberry.UNSET, description="Pipeline id.")
    tags: list[str] | None = strawberry.UNSET
    assignedTo: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="User id of the owning rep."
    )


@strawberry.input(description="Changes to a contact; only the fields given change.")
class UpdateContactInput:
    phoneNumber: str | None = strawberry.field(
        default=strawberry.UNSET, description="Any format; must not belong to another contact."
    )
    firstName: str | None = strawberry.UNSET
    lastName: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    contactStatus: str | None = strawberry.UNSET
    process: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    assignedTo: strawberry.ID | None = strawberry.UNSET


@strawberry.input(description="Which contacts to list; every condition given must hold.")
class ContactFilter:
    contactStatus: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Any of these stages."
    )
    process: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Any of these tags."
    )
    optedOut: bool | None = strawberry.UNSET
    search: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A phone in any format (exact match), digits, or part of a name.",
    )


@strawberry.type(description="The result of a contact mutation.")
class ContactPayload(Payload):
    contact: Contact | None = strawberry.field(
        default=None, description="The contact, unless refused."
    )


@strawberry.type(description="The result of deleteContact.")
class DeleteContactPayload(Payload):
    deletedId: strawberry.ID | None = strawberry.field(
        default=None, description="The id of the deleted contact."
    )
