"""Organization B cannot see or touch organization A's documents through the tenant scope."""

from __future__ import annotations

import httpx
import pytest
from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import FastAPI
from pymongo.errors import DuplicateKeyError

from core.auth import Principal
from models import Contact
from services.storage.tenancy import Tenant
from tests.support import auth, gql, make_contact, token


def tenant() -> Tenant:
    return Tenant(Principal(ObjectId(), ObjectId(), "Rep", ("rep",)))


async def _contact_of(owner: Tenant, phone: str = "+14155550100") -> Contact:
    return await owner.insert(
        Contact(organizationId=owner.organization_id, phoneNumber=phone, firstName="Sam")
    )


async def test_foreign_document_is_not_found_by_id(app: FastAPI) -> None:
    a, b = tenant(), tenant()
    contact = await _contact_of(a)
    assert contact.id is not None
    assert await a.get(Contact, contact.id) is not None
    assert await b.get(Contact, contact.id) is None


async def test_foreign_documents_are_not_listed_or_counted(app: FastAPI) -> None:
    a, b = tenant(), tenant()
    await _contact_of(a)
    assert await a.count(Contact) == 1
    assert await b.count(Contact) == 0
    assert await b.find(Contact, {"phoneNumber": "+14155550100"}).to_list() == []


async def test_foreign_document_cannot_be_updated_or_deleted(app: FastAPI) -> None:
    a, b = tenant(), tenant()
    contact = await _contact_of(a)
    assert await b.update_one(Contact, {"_id": contact.id}, {"$set": {"firstName": "X"}}) == 0
    assert await b.delete_many(Contact, {"_id": contact.id}) == 0
    stored = await a.get(Contact, contact.id)  # type: ignore[arg-type]
    assert stored is not None and stored.firstName == "Sam"


async def test_insert_stamps_the_callers_organization(app: FastAPI) -> None:
    a = tenant()
    forged = Contact(organizationId=PydanticObjectId(), phoneNumber="+14155550101")
    saved = await a.insert(forged)
    assert saved.organizationId == a.organization_id


def test_scope_refuses_a_caller_supplied_organization() -> None:
    with pytest.raises(ValueError, match="organizationId"):
        tenant().find(Contact, {"organizationId": ObjectId()})


async def test_same_phone_in_two_organizations_is_allowed(app: FastAPI) -> None:
    a, b = tenant(), tenant()
    first, second = await _contact_of(a), await _contact_of(b)
    assert first.id != second.id
    for owner, mine in ((a, first), (b, second)):
        stored = await owner.find(Contact, {"phoneNumber": "+14155550100"}).to_list()
        assert [c.id for c in stored] == [mine.id]


async def test_duplicate_phone_in_one_organization_is_refused_by_the_server(app: FastAPI) -> None:
    a = tenant()
    await _contact_of(a)
    with pytest.raises(DuplicateKeyError) as excinfo:
        await _contact_of(a)
    assert excinfo.value.code == 11000


@pytest.mark.fresh_database  # the app's start created them, not an earlier test's
async def test_indexes_exist_on_the_server(app: FastAPI) -> None:
    from models import Campaign, Recipient

    contacts = await Contact.get_pymongo_collection().index_information()
    recipients = await Recipient.get_pymongo_collection().index_information()
    campaigns = await Campaign.get_pymongo_collection().index_information()
    assert contacts["org_phone_unique"]["unique"] is True
    assert contacts["org_phone_unique"]["key"] == [("organizationId", 1), ("phoneNumber", 1)]
    assert recipients["org_campaign_contact_unique"]["unique"] is True
    assert "org_campaign_batch_seq" in recipients and "org_campaign_status_seq" in recipients
    assert campaigns["org_status_list_seq"]["key"] == [
        ("organizationId", 1),
        ("status", 1),
        ("listSeq", 1),
    ]


CONTACT = "query($id: ID!) { contact(id: $id) { id phoneNumber firstName optedOut tags } }"


async def test_contact_query_sees_only_the_callers_organization(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    contact = await make_contact(org, "+14155550100", firstName="Sam", tags=["vip"])
    mine = await gql(client, CONTACT, {"id": str(contact.id)}, auth(token(org=org)))
    theirs = await gql(client, CONTACT, {"id": str(contact.id)}, auth(token()))
    assert mine["data"]["contact"] == {
        "id": str(contact.id),
        "phoneNumber": "+14155550100",
        "firstName": "Sam",
        "optedOut": False,
        "tags": ["vip"],
    }
    assert theirs == {"data": {"contact": None}}


async def test_contact_query_with_a_malformed_id_is_null(client: httpx.AsyncClient) -> None:
    body = await gql(client, CONTACT, {"id": "not-an-id"}, auth(token()))
    assert body == {"data": {"contact": None}}


@pytest.mark.fresh_database
async def test_every_index_of_tenant_data_starts_with_the_organization(app: FastAPI) -> None:
    """MongoDB can then answer each tenant's query from its own slice of every index."""
    from models import DOCUMENT_MODELS
    from models.base import TenantDocument

    # Deliberate exceptions: in single-tenant mode a message to the deployment's shared sender
    # names no organization, so the phone is looked up in every organization to find the one
    # that messaged it last (`services.conversations.routing`); and the dispatcher finds the
    # campaigns due or sending, and the reps' held messages, in every organization.
    cross_tenant = {
        ("Contact", "phone"),
        ("Campaign", "status_across_organizations"),
        ("Message", "status_across_organizations"),
    }
    checked = 0
    seen_exceptions: set[tuple[str, str]] = set()
    # The record of applied migrations belongs to the deployment, not to an organization (a
    # few documents, unsharded: docs/database.md#shard-keys); so do the API processes' shares
    # of request budgets (one document per process and window, holding every key it served),
    # and the replies a webhook accepted and no worker applied yet (whose organization is
    # decided by applying them: docs/conversations.md#accepted-then-applied).
    deployment = {"MigrationRecord", "RequestShare", "PendingInbound"}
    for model in DOCUMENT_MODELS:
        if model.__name__ in deployment:
            continue
        assert issubclass(model, TenantDocument)
        for name, spec in (await model.get_pymongo_collection().index_information()).items():
            if name == "_id_":
                continue
            if (model.__name__, name) in cross_tenant:
                seen_exceptions.add((model.__name__, name))
                continue
            assert spec["key"][0][0] == "organizationId", (model.__name__, name, spec["key"])
            checked += 1
    assert checked >= 7
    assert seen_exceptions == cross_tenant, "a listed exception no longer exists: drop it"
