"""The REST surface for contacts, in the legacy envelope; the same services as GraphQL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import (
    CursorPagination,
    Deleted,
    Envelope,
    PageLimit,
    error_responses,
    page_limit,
)
from resolvers.rest.shapes import ContactOut
from services.contacts import edits as contact_edits
from services.contacts import queries as contact_queries
from services.inputs import ContactFields, ContactFilter, CreateContactInput, OptOutInput

router = APIRouter(prefix="/api/contacts", tags=["contacts"])


class ContactEnvelope(Envelope[ContactOut]):
    """A contact."""


class ContactListEnvelope(Envelope[list[ContactOut]]):
    """A page of contacts; `pagination.nextCursor` fetches the next one."""

    pagination: CursorPagination


class DeletedContactEnvelope(Envelope[Deleted]):
    """The id of the deleted contact."""


@router.get(
    "",
    summary="List contacts, in list order, a page at a time",
    response_model=ContactListEnvelope,
    responses=error_responses(),
)
async def list_contacts(
    tenant: CurrentTenant,
    settings: SettingsDep,
    *,
    limit: PageLimit = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor` of the previous page")
    ] = None,
    filter: Annotated[ContactFilter, Query()],  # its fields, by name (lists repeated)
) -> ContactListEnvelope:
    limit = page_limit(limit)
    page = await contact_queries.list_contacts(
        tenant, settings, filter=filter, first=limit, after=after, at=()
    )
    return ContactListEnvelope(
        message="Contacts",
        data=[ContactOut.of(c) for c in page.items],
        pagination=CursorPagination.of(page, limit),
    )


@router.post(
    "",
    status_code=201,
    summary="Create a contact",
    response_model=ContactEnvelope,
    responses=error_responses(409),
)
async def create_contact(
    body: CreateContactInput, tenant: CurrentTenant, settings: SettingsDep
) -> ContactEnvelope:
    contact = await contact_edits.create_contact(tenant, body, settings)
    return ContactEnvelope(message="Contact created", data=ContactOut.of(contact))


@router.get(
    "/{id}", summary="Get a contact", response_model=ContactEnvelope, responses=error_responses(404)
)
async def get_contact(id: str, tenant: CurrentTenant) -> ContactEnvelope:
    contact = await contact_queries.get_contact(tenant, id)
    return ContactEnvelope(message="Contact", data=ContactOut.of(contact))


@router.patch(
    "/{id}",
    summary="Change the fields sent of a contact",
    response_model=ContactEnvelope,
    responses=error_responses(404, 409),
)
async def update_contact(
    id: str, body: ContactFields, tenant: CurrentTenant, settings: SettingsDep
) -> ContactEnvelope:
    contact = await contact_edits.update_contact(tenant, id, body, settings)
    return ContactEnvelope(message="Contact updated", data=ContactOut.of(contact))


@router.delete(
    "/{id}",
    summary="Delete a contact (campaigns keep their history)",
    response_model=DeletedContactEnvelope,
    responses=error_responses(404),
)
async def delete_contact(id: str, tenant: CurrentTenant) -> DeletedContactEnvelope:
    deleted = await contact_edits.delete_contact(tenant, id)
    return DeletedContactEnvelope(message="Contact deleted", data=Deleted(_id=deleted))


@router.post(
    "/{id}/opt-out",
    summary="Record that a contact asked not to be messaged",
    response_model=ContactEnvelope,
    responses=error_responses(404),
)
async def opt_out(
    id: str, tenant: CurrentTenant, body: OptOutInput | None = None
) -> ContactEnvelope:
    contact = await contact_edits.set_opt_out(tenant, id, True, body.reason if body else None)
    return ContactEnvelope(message="Contact opted out", data=ContactOut.of(contact))


@router.post(
    "/{id}/opt-in",
    summary="Record that a contact may be messaged again",
    response_model=ContactEnvelope,
    responses=error_responses(404),
)
async def opt_in(id: str, tenant: CurrentTenant) -> ContactEnvelope:
    contact = await contact_edits.set_opt_out(tenant, id, False)
    return ContactEnvelope(message="Contact opted in", data=ContactOut.of(contact))
