"""The REST surface for conversations, in the legacy envelope; the same services as GraphQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field, create_model

from core.errors import FieldError, InvalidInput
from resolvers.conversations import provider_for
from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import CursorPagination, Envelope, PageLimit, error_responses
from resolvers.rest.shapes import ContactOut, legacy_dates
from schema import outputs
from services import inputs as commands
from services.contacts import queries as contact_queries
from services.conversations import inbox, outbound, threads
from services.inputs import Text
from services.organizations.settings import defaults_from

router = APIRouter(prefix="/api", tags=["conversations"])

if TYPE_CHECKING:  # the same shapes as far as types go; only their JSON dates differ
    MessageOut = outputs.MessageOut
    ConversationOut = outputs.ConversationOut
else:
    MessageOut = legacy_dates(outputs.MessageOut)
    _nested = outputs.ConversationOut.model_fields
    ConversationOut = create_model(  # its contact and message with legacy dates too
        "ConversationOut",
        __base__=outputs.ConversationOut,
        __module__=__name__,
        __doc__=outputs.ConversationOut.__doc__,
        contact=(ContactOut, _nested["contact"]),
        lastMessage=(MessageOut, _nested["lastMessage"]),
    )

_SEND = commands.SendMessageInput.model_fields


class SendMessageBody(BaseModel):
    """A rep's message to the contact of the path: `SendMessageInput` without its id."""

    body: Text = Field(description=_SEND["body"].description)
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


@router.get(
    "/conversations",
    summary="List conversations, newest activity first",
    response_model=ConversationListEnvelope,
    responses=error_responses(),
)
async def list_conversations(
    tenant: CurrentTenant,
    settings: SettingsDep,
    limit: PageLimit = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor` of the previous page")
    ] = None,
    *,
    filter: Annotated[commands.ConversationFilter, Query()],  # its fields, by name
) -> ConversationListEnvelope:
    page = await inbox.conversations_page(
        tenant,
        settings,
        first=limit,
        after=after,
        where=inbox.filter_of(filter),
        size_at=("limit",),
    )
    return ConversationListEnvelope(
        message="Conversations",
        data=[ConversationOut.of(c) for c in page.items],
        pagination=CursorPagination.of(page, limit),
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
    limit: PageLimit = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor`: older messages")
    ] = None,
) -> MessageListEnvelope:
    contact = await contact_queries.get_contact(tenant, id)
    assert contact.id is not None
    page = await threads.thread_page(
        tenant, contact.id, settings, first=limit, after=after, size_at=("limit",)
    )
    return MessageListEnvelope(
        message="Messages",
        data=[MessageOut.of(m) for m in page.items],
        pagination=CursorPagination.of(page, limit),
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
        Header(alias="Idempotency-Key", description=_SEND["idempotencyKey"].description),
    ] = None,
) -> MessageEnvelope:
    key = idempotency_key or body.idempotencyKey
    if not key:
        message = "Send an Idempotency-Key header (or idempotencyKey): retries must be safe"
        raise InvalidInput(message, [FieldError(("idempotencyKey",), "REQUIRED", message)])
    command = commands.parse_as(
        commands.SendMessageInput, {"contactId": id, "body": body.body, "idempotencyKey": key}
    )
    sent = await outbound.send_message(
        tenant,
        outbound.Outgoing(command.contactId, command.body, command.idempotencyKey),
        provider=provider_for(settings),
        settings=settings,
        defaults=defaults_from(settings),
    )
    return MessageEnvelope(message="Message sent", data=MessageOut.of(sent))
