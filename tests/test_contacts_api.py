"""Managing contacts through both APIs: create, change, delete, opt out, list and search."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from bson import ObjectId

from core.config import Settings
from models import Contact, ContactPage
from services.contacts.queries import MAX_ANY_OF, list_contacts
from services.inputs import ContactFilter
from services.storage.tenancy import Tenant
from tests.support import auth, create_campaign, gql, pages, phones, token

CREATE = """
mutation($input: CreateContactInput!) {
  createContact(input: $input) {
    contact { id phoneNumber firstName contactStatus tags optedOut }
    userErrors { field code }
  }
}
"""
LIST = """
query($filter: ContactFilter, $first: Int, $after: String) {
  contacts(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { firstName phoneNumber } }
  }
}
"""


async def rest(http: httpx.AsyncClient, org: ObjectId, method: str, path: str, **kw: Any) -> Any:
    return await http.request(method, f"/api/contacts{path}", headers=auth(token(org=org)), **kw)


async def test_create_normalises_the_phone_and_refuses_a_taken_one(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    body = await gql(
        client,
        CREATE,
        {"input": {"phoneNumber": "(415) 555-0101", "firstName": " Ana ", "tags": ["a", "a", " "]}},
        auth(token(org=org)),
    )
    created = body["data"]["createContact"]
    assert created["userErrors"] == []
    assert created["contact"]["phoneNumber"] == "+14155550101"
    assert (created["contact"]["firstName"], created["contact"]["tags"]) == ("Ana", ["a"])
    again = await rest(client, org, "POST", "", json={"phoneNumber": "+1 415 555 0101"})
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "DUPLICATE_PHONE"
    assert created["contact"]["id"] in again.json()["message"]
    other_org = await rest(client, ObjectId(), "POST", "", json={"phoneNumber": "+14155550101"})
    assert other_org.status_code == 201  # phones are unique per organization only
    invalid = await gql(client, CREATE, {"input": {"phoneNumber": "12"}}, auth(token(org=org)))
    assert invalid["data"]["createContact"]["userErrors"] == [
        {"field": ["input", "phoneNumber"], "code": "INVALID_PHONE"}
    ]
    assert await Contact.find({"organizationId": org}).count() == 1


async def test_update_and_a_phone_taken_meanwhile(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    a = (await rest(client, org, "POST", "", json={"phoneNumber": "+14155550101"})).json()["data"]
    b = (await rest(client, org, "POST", "", json={"phoneNumber": "+14155550102"})).json()["data"]
    changed = await rest(
        client, org, "PATCH", f"/{a['_id']}", json={"lastName": "Lee", "contactStatus": "Won"}
    )
    assert changed.status_code == 200
    assert (changed.json()["data"]["lastName"], changed.json()["data"]["contactStatus"]) == (
        "Lee",
        "Won",
    )
    taken = await rest(client, org, "PATCH", f"/{a['_id']}", json={"phoneNumber": "415-555-0102"})
    assert taken.status_code == 409
    assert taken.json()["errors"][0] == {
        "field": "phoneNumber",
        "code": "DUPLICATE_PHONE",
        "message": f"Another contact ({b['_id']}) already has the phone +14155550102",
    }
    stored = await Contact.get(a["_id"])
    assert stored is not None and stored.phoneNumber == "+14155550101" and stored.lastName == "Lee"


async def test_concurrent_edits_of_one_contact_lose_no_field(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    made = (await rest(client, org, "POST", "", json={"phoneNumber": "+14155550101"})).json()
    id = made["data"]["_id"]
    edits = [
        {"firstName": "F"},
        {"lastName": "L"},
        {"email": "e@x.io"},
        {"process": "p"},
        {"contactStatus": "s"},
        {"tags": ["t"]},
    ]
    answers = await asyncio.gather(*(rest(client, org, "PATCH", f"/{id}", json=e) for e in edits))
    assert [a.status_code for a in answers] == [200] * len(edits)
    stored = await Contact.get(id)
    assert stored is not None
    assert (stored.firstName, stored.lastName, stored.email, stored.process) == (
        "F",
        "L",
        "e@x.io",
        "p",
    )
    assert (stored.contactStatus, stored.tags, stored.version) == ("s", ["t"], len(edits))


async def test_opt_out_records_when_and_why_and_opt_in_clears_it(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    made = (await rest(client, org, "POST", "", json={"phoneNumber": "+14155550101"})).json()
    id = made["data"]["_id"]
    out = await rest(client, org, "POST", f"/{id}/opt-out", json={"reason": "Replied STOP"})
    data = out.json()["data"]
    assert (data["optedOut"], data["optOutReason"]) == (True, "Replied STOP")
    assert data["optedOutAt"].endswith("Z")
    body = await gql(
        client,
        "mutation($id: ID!) { optInContact(id: $id) { contact { optedOut optedOutAt } } }",
        {"id": id},
        auth(token(org=org)),
    )
    assert body["data"]["optInContact"]["contact"] == {"optedOut": False, "optedOutAt": None}


async def test_deleting_a_contact_keeps_its_campaigns(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(
        client, org, newContacts=[{"phoneNumber": "+14155550101"}, {"phoneNumber": "+14155550102"}]
    )
    gone = await rest(client, org, "DELETE", f"/{campaign['userIds'][0]}")
    assert gone.json()["data"] == {"_id": campaign["userIds"][0]}
    assert (await rest(client, org, "GET", f"/{campaign['userIds'][0]}")).status_code == 404
    detail = await client.get(f"/api/campaigns/{campaign['_id']}", headers=auth(token(org=org)))
    assert detail.json()["data"]["userIds"] == campaign["userIds"]
    assert detail.json()["data"]["stats"]["total"] == 2


async def test_filters_and_search_by_any_phone_format_or_name(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    people = [
        {"phoneNumber": "+14155550101", "firstName": "Ana", "lastName": "Lopez", "tags": ["vip"]},
        {"phoneNumber": "+14155550102", "firstName": "Bo", "contactStatus": "Won"},
        {"phoneNumber": "+442071838750", "firstName": "Cy", "lastName": "A.na"},
    ]
    for person in people:
        assert (await rest(client, org, "POST", "", json=person)).status_code == 201
    await rest(client, ObjectId(), "POST", "", json={"phoneNumber": "+14155550103"})

    async def names(filter: dict[str, Any]) -> list[str]:
        body = await gql(client, LIST, {"filter": filter}, auth(token(org=org)))
        return [e["node"]["firstName"] for e in body["data"]["contacts"]["edges"]]

    assert await names({"search": "(415) 555-0102"}) == ["Bo"]
    assert await names({"search": "+1 415.555.0101"}) == ["Ana"]
    assert await names({"search": "555010"}) == ["Ana", "Bo"]
    assert await names({"search": "ana"}) == ["Ana"]
    assert await names({"search": "a.n"}) == ["Cy"]  # a dot is a dot, not any character
    assert await names({"tags": ["vip"]}) == ["Ana"]
    assert await names({"contactStatus": ["Won"], "optedOut": False}) == ["Bo"]
    listed = await rest(client, org, "GET", "?search=4155550101&limit=1")
    assert listed.json()["pagination"] == {"limit": 1, "hasMore": False, "nextCursor": None}
    assert [c["firstName"] for c in listed.json()["data"]] == ["Ana"]


async def test_contacts_page_through_in_creation_order(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    for i in range(5):
        await rest(
            client, org, "POST", "", json={"phoneNumber": f"+1415555010{i}", "firstName": f"C{i}"}
        )
    found = await pages(client, LIST, ["contacts"], auth(token(org=org)), first=2)
    seen = [e["node"]["firstName"] for page in found for e in page["edges"]]
    assert seen == [f"C{i}" for i in range(5)] and found[-1]["totalCount"] == 5


async def test_contacts_stored_before_versions_existed_can_be_changed(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    legacy = {"organizationId": org, "phoneNumber": "+14155550101", "firstName": "Old"}
    inserted = await Contact.get_pymongo_collection().insert_one(legacy)
    changed = await rest(client, org, "PATCH", f"/{inserted.inserted_id}", json={"lastName": "New"})
    assert changed.status_code == 200, changed.text
    stored = await Contact.get(inserted.inserted_id)
    assert stored is not None and (stored.lastName, stored.version) == ("New", 1)


async def test_the_list_walks_pages_in_order_and_shows_every_contact_once(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    imported = await create_campaign(client, org, newContacts=phones(250), status="draft")
    singles = [
        (await rest(client, org, "POST", "", json={"phoneNumber": f"+1415555020{i}"})).json()
        for i in range(3)
    ]
    again = await create_campaign(
        client, org, newContacts=[*phones(2), *phones(3, start=900)], status="draft"
    )
    expected = imported["userIds"] + [s["data"]["_id"] for s in singles] + again["userIds"][2:]
    seen: list[str] = []
    after = None
    while True:
        path = f"?limit=30&after={after}" if after else "?limit=30"
        answer = (await rest(client, org, "GET", path)).json()
        seen += [c["_id"] for c in answer["data"]]
        if not answer["pagination"]["hasMore"]:
            break
        after = answer["pagination"]["nextCursor"]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == 256
    stored = {str(c.id): c.page or 0 for c in await Contact.find({"organizationId": org}).to_list()}
    pages = [stored[i] for i in seen]
    assert pages == sorted(pages)  # list order is page order
    assert pages[:250] == [i // 100 for i in range(250)]  # the import fills pages of 100
    assert {stored[s["data"]["_id"]] for s in singles} == {2}  # singles join page 2


async def test_concurrent_creations_each_get_listed(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    made = await asyncio.gather(
        *(rest(client, org, "POST", "", json={"phoneNumber": f"+1415555030{i}"}) for i in range(8)),
        *(
            create_campaign(client, org, newContacts=phones(120, start=1000 * i), status="draft")
            for i in range(1, 4)
        ),
    )
    singles, campaigns = made[:8], made[8:]  # `create_campaign` asserts its own 201
    assert [m.status_code for m in singles] == [201] * 8, [m.text for m in singles]
    assert [c["stats"]["total"] for c in campaigns] == [120] * 3, campaigns
    found = await pages(client, LIST, ["contacts"], auth(token(org=org)), first=100)
    total = sum(len(page["edges"]) for page in found)
    assert total == 8 + 3 * 120 == found[-1]["totalCount"]
    claimed = sorted([p["page"] async for p in ContactPage.get_pymongo_collection().find()])
    assert claimed == list(range(len(claimed)))  # claims stay a dense prefix


async def test_a_sparse_filter_stops_after_a_bounded_read_with_a_cursor(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    org = ObjectId()
    await create_campaign(client, org, newContacts=phones(350), status="draft")
    tenant = Tenant.for_organization(org)
    nobody = ContactFilter(tags=["vip"])  # checked on each page: the read stops
    first = await list_contacts(tenant, settings, filter=nobody, first=10, max_pages=2)
    assert (first.items, first.has_next) == ([], True) and first.end_cursor is not None
    rest_of_it = await list_contacts(
        tenant, settings, filter=nobody, first=10, after=first.end_cursor, max_pages=2
    )
    assert (rest_of_it.items, rest_of_it.has_next) == ([], False)


async def test_a_sparse_filter_of_equalities_gives_full_pages(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A stage few contacts have, at the end of a long list: pages are full, in list order,
    and end where the matches end (past the pages read in order, the matches are read)."""
    org = ObjectId()
    await create_campaign(client, org, newContacts=phones(900), status="draft")
    await create_campaign(
        client, org, newContacts=phones(25, start=5000), contactStatus="Customer", status="draft"
    )
    tenant = Tenant.for_organization(org)
    customers = ContactFilter(contactStatus=["Customer"])
    seen: list[str] = []
    after = None
    sizes = []
    while True:
        page = await list_contacts(tenant, settings, filter=customers, first=10, after=after)
        sizes.append(len(page.items))
        seen += [c.phoneNumber for c in page.items]
        if not page.has_next:
            break
        after = page.end_cursor
    assert sizes == [10, 10, 5]
    assert seen == [p["phoneNumber"] for p in phones(25, start=5000)]


async def test_a_filter_lists_at_most_a_hundred_values(client: httpx.AsyncClient) -> None:
    """FerretDB checks every contact it reads against the whole list: a list of 40,000 tags
    took 25 s at 20,000 contacts. A filter names at most `MAX_ANY_OF` values per condition."""
    query = "query($t: [String!]) { contacts(first: 1, filter: {tags: $t}) { totalCount } }"
    org = ObjectId()
    for tags, refused in (([f"t{i}" for i in range(MAX_ANY_OF)], False), (["t"] * 40_000, True)):
        body = await gql(client, query, {"t": tags}, headers=auth(token(org=org)))
        if refused:
            [error] = body["errors"]
            found = [(u["field"], u["code"]) for u in error["extensions"]["userErrors"]]
            assert found == [(["filter", "tags"], "TOO_MANY")], error
        else:
            assert body["data"]["contacts"]["totalCount"] == 0, body


async def test_rest_names_a_bad_filter_by_its_query_parameter(client: httpx.AsyncClient) -> None:
    """REST takes the filter's fields as query parameters, so its errors name them so."""
    headers = auth(token(org=ObjectId()))
    tags = "&".join(f"tags=t{i}" for i in range(MAX_ANY_OF + 1))
    cases = [
        (f"/api/contacts?{tags}", "tags", "TOO_MANY"),
        (f"/api/contacts.csv?{tags}", "tags", "TOO_MANY"),
        ("/api/contacts?search=" + "1" * 101, "search", "TOO_LONG"),
    ]
    for path, field, code in cases:
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 400, (path[:40], answer.text)
        [error] = answer.json()["errors"]
        assert (error["field"], error["code"]) == (field, code), error
