"""The REST surface for conversations, in the legacy envelope; the same services as GraphQL."""

from __future__ import annotations

from typing import Annotated

from bson import ObjectId
from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field

from core.errors import FieldError, InvalidInput
from models.conversation import Direction
from resolvers.conversations import provider_for
from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import CursorPagination, Envelope, error_responses
from resolvers.rest.shapes import ContactOut, LegacyDateTime
from services.contacts import queries as contact_queries
from services.conversations import inbox, outbound, threads
from services.conversations.inbox import Conversation
from services.conversations.threads import ThreadMessage
from services.inputs import Text
from services.organizations.settings import defaults_from
from services.storage.pages import Cursors

router = APIRouter(prefix="/api", tags=["conversations"])


class MessageOut(BaseModel):
    """One message of a contact's thread, either way."""

    id: str = Field(alias="_id", description="A campaign's send: its recipient's id")
    contactId: str
    direction: Direction
    body: str
    media: list[str] = Field(description="URLs of attached media (MMS)")
    from_: str | None = Field(alias="from", description="The sending number, when known")
    to: str | None
    status: str = Field(
        description="received; waiting, sending, sent, delivered, undelivered, failed, unknown"
    )
    errorCode: str | None
    campaignId: str | None
    createdAt: LegacyDateTime
    nextSendAt: LegacyDateTime | None = Field(description="When a held message goes out")

    @classmethod
    def of(cls, item: ThreadMessage) -> MessageOut:
        return cls.model_validate(
            {
                "_id": str(item.id),
                "contactId": str(item.contactId),
                "direction": item.direction,
                "body": item.body,
                "media": list(item.media),
                "from": item.fromNumber,
                "to": item.toNumber,
                "status": item.status,
                "errorCode": item.errorCode,
                "campaignId": str(item.campaignId) if item.campaignId else None,
                "createdAt": item.createdAt,
                "nextSendAt": item.nextSendAt,
            }
        )


class ConversationOut(BaseModel):
    """A contact's conversation as the inbox shows it."""

    contact: ContactOut
    lastMessage: MessageOut
    unreadCount: int
    owner: str | None = Field(description="User id of the rep who answers it")

    @classmethod
    def of(cls, found: Conversation) -> ConversationOut:
        return cls(
            contact=ContactOut.of(found.contact),
            lastMessage=MessageOut.of(found.lastMessage),
            unreadCount=found.unreadCount,
            owner=str(found.owner) if found.owner else None,
        )


class SendMessageBody(BaseModel):
    """A rep's message to the contact."""

    body: Text = Field(description="Placeholders as in campaigns ({{firstName|there}})")
    idempotencyKey: Text | None = Field(
        default=None, description="Or the Idempotency-Key header: a retry returns the first"
    )


class MessageEnvelope(Envelope[MessageOut]):
    """A message."""


class MessageListEnvelope(Envelope[list[MessageOut]]):
    """A page of a thread, newest first; `pagination.nextCursor` continues with older ones."""

    pagination: CursorPagination


class ConversationListEnvelope(Envelope[list[ConversationOut]]):
    """A page of the inbox, newest activity first."""

    pagination: CursorPagination


def _id(raw: str | None, field: str) -> ObjectId | None:
    if raw is None:
        return None
    if not ObjectId.is_valid(raw):
        message = f"'{raw}' is not an id"
        raise InvalidInput(message, [FieldError((field,), "INVALID_ID", message)])
    return ObjectId(raw)


@router.get(
    "/conversations",
    summary="List conversations, newest activity first",
    response_model=ConversationListEnvelope,
    responses=error_responses(),
)
async def list_conversations(
    tenant: CurrentTenant,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most 100")] = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor` of the previous page")
    ] = None,
    assignedTo: Annotated[str | None, Query(description="Owned by this rep")] = None,
    unread: Annotated[bool | None, Query(description="With unread messages or not")] = None,
    campaignId: Annotated[str | None, Query(description="With a message of it")] = None,
    search: Annotated[str | None, Query(description="Part of a name or phone")] = None,
) -> ConversationListEnvelope:
    cursors = Cursors(settings, "conversations:activity:desc")
    before = int(cursors.decode(after)[0]) if after is not None else None
    where = inbox.InboxFilter(
        assignedTo=_id(assignedTo, "assignedTo"),
        unread=unread,
        campaignId=_id(campaignId, "campaignId"),
        search=search,
    )
    found = await inbox.list_conversations(tenant, first=limit, before=before, where=where)
    next_cursor = None
    if found.resume is not None:
        next_cursor = cursors.encode(found.resume, ObjectId())
    elif found.has_next and found.items:
        last = found.items[-1]
        next_cursor = cursors.encode(last.position, last.lastStored)
    return ConversationListEnvelope(
        message="Conversations",
        data=[ConversationOut.of(c) for c in found.items],
        pagination=CursorPagination(limit=limit, hasMore=found.has_next, nextCursor=next_cursor),
    )


@router.get(
    "/contacts/{id}/messages",
    summary="A contact's thread, newest first",
    response_model=MessageListEnvelope,
    responses=error_responses(404),
)
async def list_messages(
    id: str,
    tenant: CurrentTenant,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most 100")] = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor`: older messages")
    ] = None,
) -> MessageListEnvelope:
    contact = await contact_queries.get_contact(tenant, id)
    assert contact.id is not None
    page = await threads.thread_page(tenant, contact.id, settings, first=limit, after=after)
    return MessageListEnvelope(
        message="Messages",
        data=[MessageOut.of(m) for m in page.items],
        pagination=CursorPagination(
            limit=limit,
            hasMore=page.has_next,
            nextCursor=page.end_cursor if page.has_next else None,
        ),
    )


@router.post(
    "/contacts/{id}/messages",
    status_code=201,
    summary="Send a rep's message to the contact (idempotent by key)",
    response_model=MessageEnvelope,
    responses=error_responses(404, 409),
)
async def send_message(
    id: str,
    body: SendMessageBody,
    tenant: CurrentTenant,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retries with the same key return the first message, never a second",
        ),
    ] = None,
) -> MessageEnvelope:
    key = idempotency_key or body.idempotencyKey
    if not key:
        message = "Send an Idempotency-Key header (or idempotencyKey): retries must be safe"
        raise InvalidInput(message, [FieldError(("idempotencyKey",), "REQUIRED", message)])
    sent = await outbound.send_message(
        tenant,
        outbound.Outgoing(id, body.body, key),
        provider=provider_for(settings),
        settings=settings,
        defaults=defaults_from(settings),
    )
    return MessageEnvelope(message="Message sent", data=MessageOut.of(sent))
