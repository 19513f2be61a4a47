"""GraphQL types for conversations: messages both ways, a contact's thread, the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from beanie import PydanticObjectId

from core.errors import NotFound
from models.conversation import Direction
from schema.context import Info
from schema.errors import Payload
from schema.outputs import CampaignSummaryOut, ContactOut
from schema.pagination import Connection
from schema.users import User
from services.campaigns import queries as campaign_queries
from services.conversations import threads
from services.conversations.inbox import Conversation as ConversationState
from services.conversations.threads import ThreadMessage

if TYPE_CHECKING:
    # The types below are referenced lazily (`schema.contacts` imports this module); they
    # read these output models' attributes, which is what the checker sees.
    Contact = ContactOut
    Campaign = CampaignSummaryOut

strawberry.enum(Direction, name="MessageDirection", description="Which way a message went.")


@strawberry.type(description="One message of a contact's thread, either way.")
class Message:
    state: strawberry.Private[ThreadMessage]

    @strawberry.field(description="The message's id (a campaign send: its recipient's id).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.state.id))

    @strawberry.field(description="INBOUND from the contact, OUTBOUND to it.")
    def direction(self) -> Direction:
        return self.state.direction

    @strawberry.field(description="The text, as the contact got or wrote it.")
    def body(self) -> str:
        return self.state.body

    @strawberry.field(description="URLs of attached media (MMS), in order.")
    def media(self) -> list[str]:
        return list(self.state.media)

    @strawberry.field(name="from", description="The sending number, when known.")
    def from_(self) -> str | None:
        return self.state.fromNumber

    @strawberry.field(description="The receiving number.")
    def to(self) -> str | None:
        return self.state.toNumber

    @strawberry.field(
        description="received (inbound); waiting (quiet hours), sending, sent, delivered, "
        "undelivered, failed or unknown (outbound)."
    )
    def status(self) -> str:
        return self.state.status

    @strawberry.field(description="Why an outbound message failed (provider code).")
    def error_code(self) -> str | None:
        return self.state.errorCode

    @strawberry.field(description="When it was sent or received (UTC).")
    def created_at(self) -> datetime:
        return self.state.createdAt

    @strawberry.field(description="When a message held by quiet hours goes out; else null.")
    def next_send_at(self) -> datetime | None:
        return self.state.nextSendAt

    @strawberry.field(description="The contact of the thread.")
    async def contact(
        self, info: Info
    ) -> Annotated[Contact, strawberry.lazy("schema.contacts")] | None:
        found = await info.context.loaders.contacts.load(PydanticObjectId(self.state.contactId))
        return ContactOut.of(found) if found else None

    @strawberry.field(
        description="The campaign it belongs to: a campaign's send, or the reply attributed to it."
    )
    async def campaign(
        self, info: Info
    ) -> Annotated[Campaign, strawberry.lazy("schema.campaigns")] | None:
        if self.state.campaignId is None:
            return None
        try:
            found = await campaign_queries.get_campaign(
                info.context.tenant, str(self.state.campaignId)
            )
        except NotFound:
            return None
        return CampaignSummaryOut.of(found)


async def contact_messages(
    root: strawberry.Parent[ContactOut],
    info: Info,
    first: int | None = 20,
    after: str | None = None,
) -> Connection[Message]:
    """A contact's thread, newest first: `after: endCursor` continues with older messages."""
    page = await threads.thread_page(
        info.context.tenant,
        PydanticObjectId(root.id),
        info.context.settings,
        first=first,
        after=after,
    )

    async def count() -> int:
        return len(await threads.thread(info.context.tenant, PydanticObjectId(root.id)))

    return Connection.of(page, lambda item: Message(state=item), count)


@strawberry.type(description="A contact's conversation as the inbox shows it.")
class Conversation:
    state: strawberry.Private[ConversationState]

    @strawberry.field(description="The contact.")
    def contact(self) -> Annotated[Contact, strawberry.lazy("schema.contacts")]:
        return ContactOut.of(self.state.contact)

    @strawberry.field(description="The newest message of the thread.")
    def last_message(self) -> Message:
        return Message(state=self.state.lastMessage)

    @strawberry.field(description="Messages received since a rep last marked it read.")
    def unread_count(self) -> int:
        return self.state.unreadCount

    @strawberry.field(
        description="Who answers it: the rep it was assigned to, else the rep of the campaign "
        "the latest reply answered, else the contact's owner; null: nobody."
    )
    async def owner(self, info: Info) -> User | None:
        if self.state.owner is None:
            return None
        name = await info.context.loaders.users.load(PydanticObjectId(self.state.owner))
        return User(id=strawberry.ID(str(self.state.owner)), fullName=name or "")


@strawberry.input(description="Which conversations to list; every condition given must hold.")
class ConversationFilter:
    assigned_to: strawberry.ID | None = strawberry.field(
        default=None, description="Owned by this rep."
    )
    unread: bool | None = strawberry.field(
        default=None, description="true: with unread messages; false: all read."
    )
    campaign_id: strawberry.ID | None = strawberry.field(
        default=None, description="With a message of this campaign."
    )
    search: str | None = strawberry.field(
        default=None, description="Part of the contact's name or phone."
    )


@strawberry.input(description="A rep's message to one contact.")
class SendMessageInput:
    contact_id: strawberry.ID = strawberry.field(description="The contact to message.")
    body: str = strawberry.field(
        description="The text; placeholders as in campaigns ({{firstName|there}})."
    )
    idempotency_key: str = strawberry.field(
        description="Retries with the same key return the first message, never a second one."
    )


@strawberry.type(description="The result of sendMessage.")
class SendMessagePayload(Payload):
    message: Message | None = strawberry.field(
        default=None, description="The message (status says whether it waits), unless refused."
    )


@strawberry.type(description="The result of assignConversation or markConversationRead.")
class ConversationPayload(Payload):
    conversation: Conversation | None = strawberry.field(
        default=None, description="The conversation now (null while it has no messages)."
    )
