"""GraphQL types for contacts, derived from `schema.outputs.ContactOut` and the contact inputs."""

from __future__ import annotations

import strawberry

from models.contact import ConsentSource
from schema.conversations import Message, contact_messages
from schema.derive import graphql_input, graphql_type
from schema.errors import Payload
from schema.outputs import ContactOut
from schema.pagination import Connection
from services import inputs as commands

strawberry.enum(ConsentSource, description="Where a contact's consent to be texted came from.")


@graphql_type(ContactOut, name="Contact", description="A person campaigns can message.")
class Contact:
    messages: Connection[Message] = strawberry.field(
        resolver=contact_messages,
        description="The thread both ways, newest first (campaign sends included); "
        "`after: endCursor` continues with older messages, as Apollo's fetchMore would.",
    )


@graphql_input(
    commands.ConsentFields,
    name="ConsentInput",
    description="Where contacts' consent came from, and when.",
    partial=True,
)
class ConsentInput:
    consentSource: ConsentSource | None = None  # REST reads the same values as strings


@graphql_input(commands.CreateContactInput, description="A new contact.", partial=True)
class CreateContactInput:
    consentSource: ConsentSource | None = None


@graphql_input(
    commands.ContactFields,
    name="UpdateContactInput",
    description="Changes to a contact; only the fields given change.",
    partial=True,
)
class UpdateContactInput:
    consentSource: ConsentSource | None = None


@graphql_input(
    commands.ContactFilter,
    description="Which contacts to list; every condition given must hold.",
    partial=True,
)
class ContactFilter:
    pass


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
