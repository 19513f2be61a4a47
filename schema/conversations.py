"""GraphQL types for conversations: messages both ways, a contact's thread, the inbox.

Each type is derived from its pydantic shape (`schema.derive`): `Message` and `Conversation`
from the `schema.outputs` models the REST routes also return, the inputs from the service
commands in `services.inputs`; a class body holds only what GraphQL does differently (nested
objects instead of ids, `from` as its GraphQL name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from beanie import PydanticObjectId

from core.errors import NotFound
from models.conversation import Direction
from schema.context import Info
from schema.derive import graphql_input, graphql_type
from schema.errors import Payload
from schema.outputs import CampaignSummaryOut, ContactOut, ConversationOut, MessageOut
from schema.pagination import Connection
from schema.users import User
from services import inputs as commands
from services.campaigns import queries as campaign_queries
from services.conversations import threads

if TYPE_CHECKING:
    # The types below are referenced lazily (`schema.contacts` imports this module); they
    # read these output models' attributes, which is what the checker sees.
    Contact = ContactOut
    Campaign = CampaignSummaryOut

strawberry.enum(Direction, name="MessageDirection", description="Which way a message went.")


@graphql_type(
    MessageOut,
    name="Message",
    description="One message of a contact's thread, either way.",
    exclude=("contactId", "campaignId"),  # GraphQL shows the contact and the campaign
)
class Message:
    @strawberry.field(name="from", description=MessageOut.model_fields["from_"].description)
    def from_(self, root: strawberry.Parent[MessageOut]) -> str | None:
        return root.from_

    @strawberry.field(description=MessageOut.model_fields["contactId"].description)
    async def contact(
        self, root: strawberry.Parent[MessageOut], info: Info
    ) -> Annotated[Contact, strawberry.lazy("schema.contacts")] | None:
        found = await info.context.loaders.contacts.load(PydanticObjectId(root.contactId))
        return ContactOut.of(found) if found else None

    @strawberry.field(description=MessageOut.model_fields["campaignId"].description)
    async def campaign(
        self, root: strawberry.Parent[MessageOut], info: Info
    ) -> Annotated[Campaign, strawberry.lazy("schema.campaigns")] | None:
        if root.campaignId is None:
            return None
        try:
            found = await campaign_queries.get_campaign(info.context.tenant, root.campaignId)
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

    return Connection.of(page, MessageOut.of, count)


@graphql_type(
    ConversationOut,
    name="Conversation",
    description="A contact's conversation as the inbox shows it.",
)
class Conversation:
    contact: Annotated[Contact, strawberry.lazy("schema.contacts")]  # no import cycle

    @strawberry.field(
        description="Who answers it: the rep it was assigned to, else the rep of the campaign "
        "the latest reply answered, else the contact's owner; null: nobody."
    )
    async def owner(self, root: strawberry.Parent[ConversationOut], info: Info) -> User | None:
        if root.owner is None:
            return None
        name = await info.context.loaders.users.load(PydanticObjectId(root.owner))
        return User(id=strawberry.ID(root.owner), fullName=name or "")


@graphql_input(
    commands.ConversationFilter,
    description="Which conversations to list; every condition given must hold.",
)
class ConversationFilter:
    pass


@graphql_input(commands.SendMessageInput, description="A rep's message to one contact.")
class SendMessageInput:
    pass


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
