"""Reading campaigns: connections, filters, ordering, recipients, and batched loading."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson import ObjectId

from main import create_app
from models import Recipient
from models.recipient import HEAD_SIZE
from services.campaigns import queries
from services.storage.positions import CAMPAIGNS_PER_PAGE
from tests.support import (
    CommandLog,
    auth,
    create_campaign,
    future,
    gql,
    make_settings,
    pages,
    phones,
    release_database,
    token,
)

LIST = """
query List($first: Int, $after: String, $filter: CampaignFilter, $orderBy: CampaignOrder) {
  campaigns(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name status scheduleDate } }
  }
}
"""


async def list_all(http: httpx.AsyncClient, org: ObjectId, **variables: Any) -> list[str]:
    """Pages through `campaigns` and returns the names in order."""
    found = await pages(http, LIST, ["campaigns"], auth(token(org=org)), **variables)
    return [e["node"]["name"] for page in found for e in page["edges"]]


async def test_pages_cover_every_campaign_once_in_order(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    for i in range(7):
        await create_campaign(client, org, name=f"C{i}", status="draft", scheduleDate=...)
    await create_campaign(client, ObjectId(), name="other org")
    newest_first = await list_all(client, org, first=3)
    assert newest_first == [f"C{i}" for i in reversed(range(7))]
    oldest_first = await list_all(client, org, first=2, orderBy={"direction": "ASC"})
    assert oldest_first == [f"C{i}" for i in range(7)]
    body = await gql(client, LIST, {"first": 3}, auth(token(org=org)))
    assert body["data"]["campaigns"]["totalCount"] == 7


async def test_the_newest_first_list_walks_list_pages_past_deleted_campaigns(
    client: httpx.AsyncClient,
) -> None:
    """The unfiltered list reads campaigns by list page (20 a page): pages of any size cross
    list pages, and deleted campaigns leave holes the reader walks past."""
    org = ObjectId()
    made = [
        await create_campaign(client, org, name=f"C{i}", status="draft", scheduleDate=...)
        for i in range(2 * CAMPAIGNS_PER_PAGE + 5)
    ]
    gone = {i for i in range(len(made)) if 15 <= i < 27}  # most of the second list page
    for i in sorted(gone):
        query = f'mutation {{ deleteCampaign(id: "{made[i]["_id"]}") {{ deletedId }} }}'
        await gql(client, query, headers=auth(token(org=org)))
    kept = [f"C{i}" for i in reversed(range(len(made))) if i not in gone]
    for size in (7, 20, 100):
        assert await list_all(client, org, first=size) == kept
    body = await gql(client, LIST, {"first": 1}, auth(token(org=org)))
    assert body["data"]["campaigns"]["totalCount"] == len(kept)


async def test_schedule_order_is_stable_under_ties_and_puts_drafts_last_when_descending(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    same = future(10)
    for i in range(4):
        await create_campaign(client, org, name=f"tie{i}", scheduleDate=same)
    await create_campaign(client, org, name="later", scheduleDate=future(20))
    await create_campaign(client, org, name="draft", status="draft", scheduleDate=...)
    order = {"field": "SCHEDULE_DATE", "direction": "DESC"}
    names = await list_all(client, org, first=2, orderBy=order)
    assert names[0] == "later" and names[-1] == "draft"
    assert sorted(names[1:5]) == [f"tie{i}" for i in range(4)] and len(names) == 6
    ascending = await list_all(client, org, first=2, orderBy={**order, "direction": "ASC"})
    assert ascending == ["draft", *reversed(names[1:5]), "later"]


async def test_filters(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    await create_campaign(client, org, name="Spring (a+b)", scheduleDate=future(5))
    await create_campaign(client, org, name="spring sale", status="draft", scheduleDate=...)
    await create_campaign(client, org, name="Autumn", scheduleDate=future(40))

    async def names(filter: dict[str, Any]) -> list[str]:
        return sorted(await list_all(client, org, filter=filter))

    assert await names({"search": "SPRING"}) == ["Spring (a+b)", "spring sale"]
    assert await names({"search": "(a+b)"}) == ["Spring (a+b)"]  # regex characters are literal
    assert await names({"search": ".*"}) == []
    assert await names({"status": ["DRAFT"]}) == ["spring sale"]
    assert await names({"status": ["DRAFT", "SCHEDULED"]}) == [
        "Autumn",
        "Spring (a+b)",
        "spring sale",
    ]
    assert await names({"scheduledAfter": future(20)}) == ["Autumn"]
    assert await names({"scheduledBefore": future(20), "type": "SMS"}) == ["Spring (a+b)"]
    everything = ["Autumn", "Spring (a+b)", "spring sale"]
    assert await names({"createdAfter": future(-1)}) == everything
    assert await names({"createdBefore": future(-1)}) == []
    me = token(org=org)
    created_by = (await gql(client, "{ me { userId } }", headers=auth(me)))["data"]["me"]
    assert await names({"createdBy": str(ObjectId())}) == []
    assert created_by  # the creator filter with a real id is covered in the REST list test


async def test_filtered_lists_give_full_pages_in_list_order(client: httpx.AsyncClient) -> None:
    """Filtered lists walk the list pages too (a sort would read every matching campaign on
    FerretDB); a status the first list pages hardly hold is then read by its matches, and the
    pages stay full and in order, either way, beside another organization's campaigns."""
    org, other = ObjectId(), ObjectId()
    total = 5 * CAMPAIGNS_PER_PAGE + 7
    drafts = {i for i in range(total) if i % 13 == 4}
    for i in range(total):
        status = "draft" if i in drafts else "scheduled"
        date = ... if i in drafts else future(5)
        await create_campaign(client, org, name=f"C{i}", status=status, scheduleDate=date)
        if i % 10 == 0:
            await create_campaign(client, other, name=f"O{i}", status=status, scheduleDate=date)
    newest = [f"C{i}" for i in reversed(range(total))]
    draft_names = [n for n in newest if int(n[1:]) in drafts]
    for size in (1, 3, 100):
        got = await list_all(client, org, first=size, filter={"status": ["DRAFT"]})
        assert got == draft_names, size
    ascending = {"direction": "ASC"}
    got = await list_all(client, org, first=2, filter={"status": ["DRAFT"]}, orderBy=ascending)
    assert got == list(reversed(draft_names))
    both = {"status": ["SCHEDULED", "DRAFT"], "type": "SMS"}
    assert await list_all(client, org, first=7, filter=both) == newest
    # Conditions the server does not push down are checked on each list page.
    assert await list_all(client, org, first=4, filter={"search": "C1"}) == [
        n for n in newest if n.startswith("C1")
    ]
    theirs = [f"O{i}" for i in reversed(range(0, total, 10)) if i in drafts]
    assert await list_all(client, other, first=2, filter={"status": ["DRAFT"]}) == theirs


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_page_size_outside_1_to_100_is_bad_user_input(
    client: httpx.AsyncClient, first: int
) -> None:
    body = await gql(client, LIST, {"first": first}, auth(token()))
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["userErrors"][0]["field"] == ["first"]


@pytest.mark.parametrize(
    "cursor", ["garbage", "", "e30.AAAA", "WyJjYW1wYWlnbnMiLDEsIjEiXQ.xxxxxxxxxxxxxxxx"]
)
async def test_invalid_or_tampered_cursor_is_bad_user_input(
    client: httpx.AsyncClient, cursor: str
) -> None:
    org = ObjectId()
    await create_campaign(client, org)
    body = await gql(client, LIST, {"first": 1, "after": cursor}, auth(token(org=org)))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["userErrors"][0]["code"] == "INVALID_CURSOR"


async def test_a_cursor_of_another_ordering_is_refused(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    for _ in range(2):
        await create_campaign(client, org)
    first = await gql(client, LIST, {"first": 1}, auth(token(org=org)))
    cursor = first["data"]["campaigns"]["pageInfo"]["endCursor"]
    other = await gql(
        client,
        LIST,
        {"first": 1, "after": cursor, "orderBy": {"field": "SCHEDULE_DATE"}},
        auth(token(org=org)),
    )
    assert other["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_another_organizations_campaign_is_null(client: httpx.AsyncClient) -> None:
    mine = await create_campaign(client, ObjectId())
    query = "query($id: ID!) { campaign(id: $id) { id name } }"
    body = await gql(client, query, {"id": mine["_id"]}, auth(token()))
    assert body == {"data": {"campaign": None}}
    for bad in ("nope", str(ObjectId())):
        assert (await gql(client, query, {"id": bad}, auth(token())))["data"]["campaign"] is None


RECIPIENTS = """
query($id: ID!, $first: Int, $after: String, $status: RecipientStatus) {
  campaign(id: $id) {
    recipients(first: $first, after: $after, status: $status) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id position status contactId contact { id firstName phoneNumber } } }
    }
  }
}
"""


async def test_recipients_page_in_order_across_batches(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org, newContacts=phones(250))
    seen: list[int] = []
    after = None
    while True:
        body = await gql(
            client,
            RECIPIENTS,
            {"id": campaign["_id"], "first": 100, "after": after},
            auth(token(org=org)),
        )
        page = body["data"]["campaign"]["recipients"]
        assert page["totalCount"] == 250
        for edge in page["edges"]:
            node = edge["node"]
            assert node["contact"]["id"] == node["contactId"]
            assert node["contact"]["firstName"] == f"P{node['position']}"
            seen.append(node["position"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(range(250))
    pending = await gql(
        client,
        RECIPIENTS,
        {"id": campaign["_id"], "first": 5, "status": "PENDING"},
        auth(token(org=org)),
    )
    assert pending["data"]["campaign"]["recipients"]["totalCount"] == 250
    sent = await gql(
        client, RECIPIENTS, {"id": campaign["_id"], "status": "SENT"}, auth(token(org=org))
    )
    assert sent["data"]["campaign"]["recipients"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


async def test_a_deleted_contact_leaves_a_recipient_with_a_null_contact(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org, newContacts=phones(2))
    deleted = await client.delete(
        f"/api/contacts/{campaign['userIds'][0]}", headers=auth(token(org=org))
    )
    assert deleted.status_code == 200
    body = await gql(client, RECIPIENTS, {"id": campaign["_id"]}, auth(token(org=org)))
    nodes = [e["node"] for e in body["data"]["campaign"]["recipients"]["edges"]]
    assert [n["contact"] is None for n in nodes] == [True, False]
    assert nodes[0]["contactId"] == campaign["userIds"][0]


PREVIEW = """
query($message: String!, $contactId: ID!) {
  previewMessage(message: $message, contactId: $contactId) {
    preview { text encoding segments characters missing }
    userErrors { field code }
  }
}
"""


async def test_preview_renders_for_one_contact_with_creations_checks(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org, newContacts=[phones(1)[0]])
    contact_id = campaign["userIds"][0]
    ok = await gql(
        client,
        PREVIEW,
        {"message": "Hi {{firstName}}! {{lastName|}}", "contactId": contact_id},
        auth(token(org=org)),
    )
    assert ok["data"]["previewMessage"] == {
        "preview": {  # with the opt-out footer: the contact has had no message yet
            "text": "Hi P0! \nReply STOP to opt out",
            "encoding": "GSM-7",
            "segments": 1,
            "characters": 29,
            "missing": [],
        },
        "userErrors": [],
    }
    left_out = await gql(
        client,
        PREVIEW,
        {"message": "Hi {{lastName}}", "contactId": contact_id},
        auth(token(org=org)),
    )
    preview = left_out["data"]["previewMessage"]["preview"]
    assert (preview["text"], preview["missing"]) == ("", ["lastName"])  # would not be sent
    bad = await gql(
        client,
        PREVIEW,
        {"message": "Hi {{fristName}}", "contactId": contact_id},
        auth(token(org=org)),
    )
    assert bad["data"]["previewMessage"]["userErrors"] == [
        {"field": ["message"], "code": "UNKNOWN_PLACEHOLDER"}
    ]
    foreign = await gql(client, PREVIEW, {"message": "Hi", "contactId": contact_id}, auth(token()))
    assert foreign["data"]["previewMessage"]["userErrors"] == [
        {"field": ["contactId"], "code": "NOT_FOUND"}
    ]


ROUND_TRIP = """
query {
  campaigns(first: 100) {
    edges { node {
      id createdBy { id fullName } stats { total sent successRate }
      recipients(first: 5) { edges { node { status contact { firstName } } } }
    } }
  }
}
"""


@pytest.mark.parametrize("campaigns", [10, 50])
async def test_listing_with_nested_fields_reads_by_page_not_by_organization(
    mongo_uri: str, campaigns: int
) -> None:
    """Nested fields cost a fixed few commands (no command per campaign for creators,
    contacts or first recipients): each is one `$in` naming what the page shows, which the
    embedded build reads from an index (a stock FerretDB v1 read the first recipients of every
    campaign of the organization: 4 s for a page of 20 at 400 campaigns)."""
    from asgi_lifespan import LifespanManager

    listener = CommandLog()
    # No sweep for pending replies while the page's commands are counted (it runs at start).
    settings = make_settings(mongo_uri, inbound_sweep_seconds=3600)
    app = create_app(settings, event_listeners=[listener])
    org = ObjectId()
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for i in range(campaigns):
                    await create_campaign(http, org, newContacts=phones(6, start=i * 6))
                listener.counting = True
                body = await gql(http, ROUND_TRIP, headers=auth(token(org=org)))
                listener.counting = False
    finally:
        await release_database(settings)
    edges = body["data"]["campaigns"]["edges"]
    assert len(edges) == campaigns
    assert all(len(e["node"]["recipients"]["edges"]) == 5 for e in edges)
    assert all(
        r["node"]["contact"]["firstName"].startswith("P")
        for e in edges
        for r in e["node"]["recipients"]["edges"]
    )
    print(f"commands for {campaigns} campaigns: {listener.names}")
    assert listener.names == ["find"] * len(listener.names), listener.names
    recipients = [query for _, collection, query in listener.seen if collection == "recipients"]
    others = [collection for _, collection, _ in listener.seen if collection != "recipients"]
    # campaigns by list page (an equality each) after a probe for the last page; users and
    # contacts one `$in` each
    assert others.count("campaigns") <= campaigns // CAMPAIGNS_PER_PAGE + 1, others
    rest = sorted(c for c in others if c != "campaigns")
    assert rest == ["campaign_slots", "contacts", "users"], others
    listed = {ObjectId(e["node"]["id"]) for e in edges}
    assert len(recipients) == 1, recipients
    assert set(recipients[0]["campaignId"]["$in"]) == listed


async def test_a_first_page_longer_than_the_head_of_an_older_campaign(
    client: httpx.AsyncClient,
) -> None:
    """Campaigns created when `head` marked 10 recipients give a first page of 20 in order
    (completed from the first batch), in a list and alone."""
    org = ObjectId()
    created = await create_campaign(client, org, newContacts=phones(30))
    changed = await Recipient.get_pymongo_collection().update_many(
        {"campaignId": ObjectId(created["_id"]), "seq": {"$gte": 10}}, {"$set": {"head": False}}
    )
    assert changed.modified_count == HEAD_SIZE - 10  # the heads a campaign gets now
    query = """
    query($id: ID!) {
      campaign(id: $id) { ...First }
      campaigns { edges { node { ...First } } }
    }
    fragment First on Campaign {
      recipients(first: 20) { pageInfo { hasNextPage } edges { node { position contactId } } }
    }
    """
    body = await gql(client, query, {"id": created["_id"]}, auth(token(org=org)))
    assert "errors" not in body, body
    for page in (
        body["data"]["campaign"]["recipients"],
        body["data"]["campaigns"]["edges"][0]["node"]["recipients"],
    ):
        assert [e["node"]["position"] for e in page["edges"]] == list(range(20))
        assert [e["node"]["contactId"] for e in page["edges"]] == created["userIds"][:20]
        assert page["pageInfo"]["hasNextPage"] is True


async def test_a_node_fetched_through_two_paths_has_the_same_id(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    created = await create_campaign(client, org, newContacts=phones(1))
    query = """
    query($id: ID!, $contact: ID!) {
      campaign(id: $id) { id createdBy { id } recipients { edges { node { contact { id } } } } }
      campaigns { edges { node { id createdBy { id } } } }
      contact(id: $contact) { id }
      me { userId }
    }
    """
    body = await gql(
        client,
        query,
        {"id": created["_id"], "contact": created["userIds"][0]},
        auth(token(org=org, user=created["createdBy"]["_id"])),
    )
    data = body["data"]
    listed = data["campaigns"]["edges"][0]["node"]
    assert data["campaign"]["id"] == listed["id"] == created["_id"]
    assert data["campaign"]["createdBy"]["id"] == listed["createdBy"]["id"] == data["me"]["userId"]
    via_recipient = data["campaign"]["recipients"]["edges"][0]["node"]["contact"]["id"]
    assert via_recipient == data["contact"]["id"] == created["userIds"][0]


async def test_a_page_far_past_the_end_is_empty_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    await create_campaign(client, org)
    for page in ("2", "50814052464881303552000"):
        answer = await client.get(
            f"/api/campaigns?page={page}&limit=99", headers=auth(token(org=org))
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == []
        assert answer.json()["pagination"]["total"] == 1


async def rest_pages(
    http: httpx.AsyncClient, org: ObjectId, limit: int, query: str = ""
) -> tuple[list[str], list[dict[str, Any]]]:
    """Reads the numbered REST list page by page; returns the names and each pagination."""
    names: list[str] = []
    paginations: list[dict[str, Any]] = []
    for page in range(1, 200):
        answer = await http.get(
            f"/api/campaigns?page={page}&limit={limit}{query}", headers=auth(token(org=org))
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        names.extend(c["name"] for c in body["data"])
        paginations.append(body["pagination"])
        if not body["data"]:
            return names, paginations
    raise AssertionError("too many pages")


async def test_numbered_rest_pages_cover_every_campaign_once_newest_first_past_deletions(
    client: httpx.AsyncClient,
) -> None:
    """The legacy numbered list reads its page by list number (no sort of the organization):
    every campaign once, newest first (creation order), pages of any size across list pages
    and past deleted campaigns, beside another organization's, the total unchanged."""
    org, other = ObjectId(), ObjectId()
    made = []
    for i in range(2 * CAMPAIGNS_PER_PAGE + 9):
        made.append(
            await create_campaign(client, org, name=f"C{i}", status="draft", scheduleDate=...)
        )
        if i % 7 == 0:
            await create_campaign(client, other, name=f"O{i}", status="draft", scheduleDate=...)
    gone = {0, 3, 19, 20, 21, 35, len(made) - 1}
    for i in sorted(gone):
        query = f'mutation {{ deleteCampaign(id: "{made[i]["_id"]}") {{ deletedId }} }}'
        await gql(client, query, headers=auth(token(org=org)))
    kept = [f"C{i}" for i in reversed(range(len(made))) if i not in gone]
    for limit in (1, 7, 20, 100):
        names, paginations = await rest_pages(client, org, limit)
        assert names == kept, limit
        assert {p["total"] for p in paginations} == {len(kept)}
        pages = -(-len(kept) // limit)
        assert paginations[0] == {"page": 1, "limit": limit, "total": len(kept), "pages": pages}
        assert len(paginations) == pages + 1  # the page past the end answers empty
    theirs, _ = await rest_pages(client, other, 3)
    assert theirs == [f"O{i}" for i in reversed(range(0, len(made), 7))]


@pytest.mark.parametrize("read_most", [queries.MATCHES_READ_MOST, 0])
async def test_numbered_rest_pages_filtered_by_status_or_search(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, read_most: int
) -> None:
    """A status filter's page comes from its matches when they are few (or the page is deep
    among them), else from a walk of the list pages: both give the same pages (`read_most`
    0 has the first pages walked)."""
    monkeypatch.setattr(queries, "MATCHES_READ_MOST", read_most)
    org = ObjectId()
    total = 2 * CAMPAIGNS_PER_PAGE + 3
    drafts = {i for i in range(total) if i % 6 == 1}
    for i in range(total):
        status = "draft" if i in drafts else "scheduled"
        date = ... if i in drafts else future(5)
        await create_campaign(client, org, name=f"C{i}", status=status, scheduleDate=date)
    newest = [f"C{i}" for i in reversed(range(total))]
    draft_names = [n for n in newest if int(n[1:]) in drafts]
    for limit in (2, 20):
        names, paginations = await rest_pages(client, org, limit, "&status=draft")
        assert names == draft_names
        assert paginations[0]["total"] == len(draft_names)
    both, _ = await rest_pages(client, org, 4, "&status=draft,scheduled")
    assert both == newest
    searched, paginations = await rest_pages(client, org, 3, "&search=C1")
    assert searched == [n for n in newest if n.startswith("C1")]
    assert paginations[0]["total"] == len(searched)


async def test_schedule_order_reads_buckets_and_follows_reschedules(
    client: httpx.AsyncClient,
) -> None:
    """The schedule-date order is read a day (or a list page of undated campaigns) at a time:
    pages of any size, either way, give every campaign once in `(scheduleDate, id)` order
    with the undated ones by list order, also after a date is set, moved or removed, with a
    filter, beside another organization's campaigns on the same days."""
    org, other = ObjectId(), ObjectId()
    dates: dict[str, str | None] = {}
    ids: dict[str, str] = {}
    for i in range(CAMPAIGNS_PER_PAGE + 14):
        day = (i * 7) % 9  # several campaigns a day, days out of creation order
        when = None if i % 5 == 2 else future(1 + day)[:11] + f"{10 + i % 3}:00:00.000Z"
        status = "draft" if when is None or i % 4 == 0 else "scheduled"
        made = await create_campaign(
            client, org, name=f"C{i}", status=status, scheduleDate=when or ...
        )
        dates[f"C{i}"], ids[f"C{i}"] = when, made["_id"]
        if i % 6 == 0:
            await create_campaign(client, other, name=f"O{i}", scheduleDate=when or future(3))
    headers = auth(token(org=org))

    async def edit(name: str, when: str | None) -> None:
        variables = {"id": ids[name], "input": {"scheduleDate": when}}
        body = await gql(client, UPDATE_DATE, variables, headers)
        assert body["data"]["updateCampaign"]["userErrors"] == [], body
        dates[name] = when

    await edit("C0", future(30))  # moved to a day no campaign had
    await edit("C4", None)  # a draft loses its date
    await edit("C2", future(2))  # an undated one gets one
    moved = await client.post(
        f"/api/campaigns/{ids['C8']}/schedule", json={"scheduleDate": future(1)}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    dates["C8"] = moved.json()["data"]["scheduleDate"]

    created_order = list(dates)
    undated = [n for n in created_order if dates[n] is None]  # ids grow with creation
    dated = sorted(
        (n for n in created_order if dates[n] is not None),
        key=lambda n: (str(dates[n]).replace(".000Z", "Z"), ids[n]),
    )
    ascending = undated + dated
    order = {"field": "SCHEDULE_DATE", "direction": "ASC"}
    for size in (1, 4, 100):
        assert await list_all(client, org, first=size, orderBy=order) == ascending, size
    descending = {**order, "direction": "DESC"}
    assert await list_all(client, org, first=3, orderBy=descending) == ascending[::-1]
    drafts = await list_all(client, org, first=2, orderBy=order, filter={"status": ["DRAFT"]})
    body = await gql(client, LIST, {"first": 100, "filter": {"status": ["DRAFT"]}}, headers)
    draft_names = {e["node"]["name"] for e in body["data"]["campaigns"]["edges"]}
    assert drafts == [n for n in ascending if n in draft_names]
    theirs = await list_all(client, other, first=5, orderBy=order)
    assert sorted(theirs) == sorted(f"O{i}" for i in range(0, CAMPAIGNS_PER_PAGE + 14, 6))


UPDATE_DATE = """
mutation($id: ID!, $input: UpdateCampaignInput!) {
  updateCampaign(id: $id, input: $input) { campaign { id } userErrors { field code } }
}
"""


async def test_a_schedule_order_filter_few_campaigns_match_resumes_after_its_read_limit(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter few campaigns match stops after a number of schedule buckets with a cursor
    that resumes at the next bucket (proven at a patched limit of 2 buckets)."""
    monkeypatch.setattr(queries, "MAX_PAGES_READ", 2)
    org = ObjectId()
    for day in range(7):
        name = "needle" if day in (3, 6) else f"hay{day}"
        await create_campaign(client, org, name=name, scheduleDate=future(1 + day))
    order = {"field": "SCHEDULE_DATE", "direction": "ASC"}
    first = await gql(
        client,
        LIST,
        {"first": 5, "filter": {"search": "needle"}, "orderBy": order},
        auth(token(org=org)),
    )
    page = first["data"]["campaigns"]
    assert page["edges"] == [] and page["pageInfo"]["hasNextPage"] is True
    for direction in ("ASC", "DESC"):
        found = await list_all(
            client,
            org,
            first=5,
            filter={"search": "needle"},
            orderBy={**order, "direction": direction},
        )
        assert found == ["needle", "needle"]
    assert len(await list_all(client, org, first=2, orderBy=order)) == 7
