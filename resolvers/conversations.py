"""Conversation queries and mutations: the inbox, a rep's message, assignment and reads."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from bson import ObjectId
from graphql import GraphQLError
from strawberry.permission import BasePermission

from core.config import Settings
from core.errors import NotFound
from resolvers.payloads import user_errors
from schema.context import Info, IsAuthenticated
from schema.conversations import (
    Conversation,
    ConversationFilter,
    ConversationPayload,
    Message,
    SendMessageInput,
    SendMessagePayload,
)
from schema.derive import to_command
from schema.outputs import ConversationOut, MessageOut
from schema.pagination import Connection
from services import inputs as commands
from services.conversations import inbox, live, outbound
from services.conversations.simulated import provider_from
from services.organizations.settings import defaults_from
from services.sending.provider import Provider

AUTH: list[type[BasePermission]] = [IsAuthenticated]
_providers: dict[int, Provider] = {}


def provider_for(settings: Settings) -> Provider:
    """The provider reps' messages go through: the one `DISPATCH_PROVIDER` names, one per app."""
    key = id(settings)
    if key not in _providers:
        _providers[key] = provider_from(settings)
    return _providers[key]


def _conversation(found: inbox.Conversation | None) -> Conversation | None:
    return ConversationOut.of(found) if found is not None else None  # type: ignore[return-value]


@strawberry.type
class ConversationQueries:
    @strawberry.field(
        description="The inbox: one conversation per contact with messages, newest activity "
        "first; at most 100 per page. `totalCount` counts every conversation, filters aside.",
        permission_classes=AUTH,
    )
    async def conversations(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: ConversationFilter | None = None,
    ) -> Connection[Conversation]:
        context = info.context
        where = inbox.filter_of(to_command(filter, "filter") if filter else None, ("filter",))
        page = await inbox.conversations_page(
            context.tenant, context.settings, first=first, after=after, where=where
        )

        async def count() -> int:
            return await inbox.count_conversations(context.tenant)

        return Connection.of(page, ConversationOut.of, count)

    @strawberry.field(
        description="A contact's conversation; null while it has no messages or when the "
        "contact is not your organization's.",
        permission_classes=AUTH,
    )
    async def conversation(self, info: Info, contact_id: strawberry.ID) -> Conversation | None:
        try:
            return _conversation(await inbox.conversation(info.context.tenant, contact_id))
        except NotFound:
            return None


@strawberry.type
class ConversationMutations:
    @strawberry.mutation(
        description="Sends a rep's message to one contact through the campaigns' provider; "
        "OPTED_OUT for a contact who opted out. Within 24 hours of the contact's own message it "
        "goes at once; otherwise quiet hours hold it (status waiting, nextSendAt says until "
        "when).",
        permission_classes=AUTH,
    )
    @user_errors
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        context = info.context
        command: commands.SendMessageInput = to_command(input, "message")
        sent = await outbound.send_message(
            context.tenant,
            outbound.Outgoing(command.contactId, command.body, command.idempotencyKey),
            provider=provider_for(context.settings),
            settings=context.settings,
            defaults=defaults_from(context.settings),
        )
        return SendMessagePayload(message=MessageOut.of(sent))  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Gives a conversation to a rep of the organization (null: back to the "
        "campaign's or the contact's owner).",
        permission_classes=AUTH,
    )
    @user_errors
    async def assign_conversation(
        self, info: Info, contact_id: strawberry.ID, user_id: strawberry.ID | None = None
    ) -> ConversationPayload:
        found = await inbox.assign(
            info.context.tenant, str(contact_id), str(user_id) if user_id else None
        )
        return ConversationPayload(conversation=_conversation(found))

    @strawberry.mutation(
        description="Marks everything received so far in a conversation as read.",
        permission_classes=AUTH,
    )
    @user_errors
    async def mark_conversation_read(
        self, info: Info, contact_id: strawberry.ID
    ) -> ConversationPayload:
        found = await inbox.mark_read(info.context.tenant, str(contact_id))
        return ConversationPayload(conversation=_conversation(found))


@strawberry.type
class ConversationSubscriptions:
    @strawberry.subscription(
        description="Every new message received by your organization (or only in the "
        "conversations of one rep, `assignedTo`), from now on, within about a second of its "
        "arrival whichever process received it. Over graphql-transport-ws, with the token in "
        "`connection_init`'s payload.",
        permission_classes=AUTH,
    )
    async def message_received(
        self, info: Info, assigned_to: strawberry.ID | None = None
    ) -> AsyncGenerator[Message, None]:
        rep = None
        if assigned_to is not None:
            if not ObjectId.is_valid(str(assigned_to)):
                message = f"'{assigned_to}' is not an id"
                raise GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})
            rep = ObjectId(str(assigned_to))
        organization = info.context.tenant.organization_id
        loaders = info.context.loaders
        async for item in live.WATCHER.listen(organization, rep):
            if item.contact is not None and item.contact.id is not None:
                # Read once by the watcher for every subscriber, and as it is now.
                loaders.contacts.prime(item.contact.id, item.contact, force=True)
            yield MessageOut.of(item.message)  # type: ignore[misc]
