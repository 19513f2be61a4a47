"""Listing and searching the suppression list by equality reads (issue 21): numbered list pages
claimed at insert, prefix-key buckets for searches of 7 digits or more, and the migration that
numbers numbers stored before (services/contacts/suppressions.py, docs/sending.md).

Each case is checked against the plain answer computed here: every number the organization
listed, in the order the service documents, with another organization's list beside it."""

from __future__ import annotations

from typing import Any

import httpx
from bson import ObjectId
from fastapi import FastAPI

from core.config import Settings
from models import Suppression, SuppressionPage
from models.base import utcnow
from services.contacts import suppressions
from tests.support import Org, auth, gql, started_again, token

LIST = """
query ($first: Int, $after: String, $search: String) {
  suppressedNumbers(first: $first, after: $after, search: $search) {
    edges { node { phoneNumber reason } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""


async def import_numbers(org: Org, numbers: list[str], reason: str | None = None) -> int:
    body: dict[str, Any] = {"csv": "phone\n" + "\n".join(numbers) + "\n"}
    if reason:
        body["reason"] = reason
    answer = await org.client.post("/api/suppressions", json=body, headers=org.headers)
    assert answer.status_code == 200, answer.text
    added: int = answer.json()["data"]["added"]
    return added


async def walk(
    org: Org, first: int, search: str | None = None, *, rest: bool = False
) -> tuple[list[str], int, int]:
    """Every number a client paging with `first` sees (GraphQL, or REST with `rest`); with the
    requests it took and the last `totalCount`."""
    seen: list[str] = []
    after: str | None = None
    requests, total = 0, -1
    while True:
        requests += 1
        if rest:
            params: dict[str, Any] = {"limit": first}
            if after:
                params["after"] = after
            if search:
                params["search"] = search
            answer = await org.client.get("/api/suppressions", params=params, headers=org.headers)
            assert answer.status_code == 200, answer.text
            data = answer.json()
            seen += [row["phoneNumber"] for row in data["data"]]
            more, after = data["pagination"]["hasMore"], data["pagination"]["nextCursor"]
        else:
            variables = {"first": first, "after": after, "search": search}
            body = await gql(org.client, LIST, variables, org.headers)
            assert "errors" not in body, body
            page = body["data"]["suppressedNumbers"]
            seen += [edge["node"]["phoneNumber"] for edge in page["edges"]]
            total = page["totalCount"]
            more, after = page["pageInfo"]["hasNextPage"], page["pageInfo"]["endCursor"]
        if not more:
            return seen, requests, total
        assert requests < 1000


async def test_the_list_pages_in_the_order_numbers_were_added(client: httpx.AsyncClient) -> None:
    org, other = Org(client), Org(client)
    first = [f"+1212{3000000 + i * 7:07d}" for i in range(250)]
    assert await import_numbers(org, list(reversed(first))) == 250  # stored in number order
    assert await import_numbers(other, [f"+1212{3000000 + i:07d}" for i in range(300)]) == 300
    typed = ["+14155550199", "+14155550101"]  # a small import: a shared page
    answer = await client.post(
        "/api/suppressions", json={"phoneNumbers": typed}, headers=org.headers
    )
    assert answer.json()["data"]["added"] == 2
    expected = first[:200] + sorted(first[200:] + typed)
    for size, rest in ((100, False), (7, True), (3, False)):
        seen, requests, total = await walk(org, size, rest=rest)
        assert seen == expected, size
        assert requests == -(-len(expected) // size)
    assert total == 252

    removed = first[10:150]  # unsuppressing takes numbers off the list and its pages
    answer = await client.request(
        "DELETE", "/api/suppressions", json={"phoneNumbers": removed}, headers=org.headers
    )
    assert answer.json()["data"]["removed"] == 140
    seen, _, total = await walk(org, 30)
    assert seen == [n for n in expected if n not in removed] and total == 112
    assert (await walk(other, 100))[0] == [f"+1212{3000000 + i:07d}" for i in range(300)]


async def test_a_list_imported_again_is_not_a_run_of_empty_pages(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """An import claims its pages before it knows which numbers are listed already; the pages
    that got nothing are marked, so a reader jumps them instead of reading each."""
    org = Org(client)
    old = [f"+1646{2000000 + i:07d}" for i in range(600)]
    assert await import_numbers(org, old) == 600  # pages 0-5
    assert await import_numbers(org, old) == 0  # pages 6-11, all empty
    assert await import_numbers(org, ["+16462999999"]) == 1  # a shared page of its own, 12
    claims = await SuppressionPage.find({"organizationId": org.id}).to_list()
    assert sorted(c.page for c in claims) == list(range(13))
    assert [(c.page, c.skipTo) for c in claims if c.skipTo is not None] == [(6, 11)]
    assert [c.page for c in claims if c.shared] == [12]

    tenant = org.tenant()
    seen: list[str] = []
    after: str | None = None
    for _ in range(7):  # a request past page 5 reads 5, 6 (empty: jump to 11), 11; then 12
        page = await suppressions.suppressed_page(
            tenant, settings, first=100, after=after, search=None, max_pages=4
        )
        assert page.items, "an empty page: the run was read page by page"
        seen += [n.phoneNumber for n in page.items]
        after = page.end_cursor
    assert seen == [*old, "+16462999999"] and not page.has_next


async def test_prefix_searches_find_every_match_in_order(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    org, other = Org(client), Org(client)
    numbers = (
        [f"+1415555{i:04d}" for i in range(0, 3000, 13)]  # dense in +1415555
        + [f"+1415556{i:04d}" for i in range(40)]
        + [f"+1212{2000000 + i * 9973:07d}" for i in range(60)]
        + ["+68221234", "+68250123", "+6834002"]  # numbers shorter than a prefix key
        + ["+4779123456", "+442071838750", "+4930123456789"]
    )
    assert await import_numbers(org, numbers, reason="DNC") == len(numbers)
    await import_numbers(other, [f"+1415555{i:04d}" for i in range(0, 3000, 7)])
    listed = (await walk(org, 100))[0]
    assert sorted(listed) == sorted(numbers)
    searches = [
        "+1415555",  # 8 characters: 111 buckets
        "1 (415) 555-01",  # 9: 11 buckets
        "+1415555001",  # a key's length
        "+14155550013",  # longer than a key: a whole number
        "+1415555000",
        "+14155551",
        "+141555",  # short: the list's pages, filtered
        "+1415",
        "+1",
        "+6822123",  # a 9-character number found among 8-character buckets
        "+682",
        "+683400",
        "+4930123",
        "+1415557",  # nothing
        "+99",
        "",
    ]
    for search in searches:
        digits = "+" + "".join(ch for ch in search if ch.isdigit())
        matches = [n for n in listed if n.startswith(digits)]
        if len(digits) >= suppressions.BUCKET_SEARCH_FROM:
            matches.sort()  # buckets are read in number order
        # 25 a page: several pages for the long results, each ending inside a bucket of 10
        for size, rest in ((25, False), (100, True)):
            seen, _, total = await walk(org, size, search, rest=rest)
            assert seen == matches, (search, size)
            if not rest:
                assert total == len(matches), search
    # a cursor of a bucket search is not a cursor of the list, and the other way round
    tenant = org.tenant()
    page = await suppressions.suppressed_page(
        tenant, settings, first=2, after=None, search="+1415555"
    )
    body = await gql(client, LIST, {"after": page.end_cursor}, org.headers)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    answer = await client.get(
        "/api/suppressions", params={"after": "nope", "search": "+1415555"}, headers=org.headers
    )
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "INVALID_CURSOR"


async def test_a_short_prefix_that_matches_few_stops_with_a_cursor(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(client)
    numbers = [f"+1212{2000000 + i:07d}" for i in range(1000)]
    numbers[150] = "+14155550150"
    numbers[730] = "+14155550730"
    assert await import_numbers(org, numbers) == 1000
    tenant = org.tenant()
    found: list[str] = []
    after, reads = None, 0
    while True:
        page = await suppressions.suppressed_page(
            tenant, settings, first=20, after=after, search="1415", max_pages=3
        )
        found += [n.phoneNumber for n in page.items]
        reads += 1
        if not page.has_next:
            break
        after = page.end_cursor
    # three pages a request; the two +1415 numbers sort last, on page 9 of 0-9
    assert found == ["+14155550150", "+14155550730"] and reads == 4


async def test_numbers_stored_before_list_pages_are_numbered_at_start(
    app: FastAPI, settings: Settings
) -> None:
    org = ObjectId()
    now = utcnow()
    numbers = [f"+1415555{i:04d}" for i in range(0, 2500, 10)]
    old = [
        {
            "_id": f"{org}:{number}",
            "organizationId": org,
            "phoneNumber": number,
            "reason": None,
            "createdAt": now,
            "updatedAt": now,
        }
        for number in reversed(numbers)
    ]
    collection = Suppression.get_pymongo_collection()
    await collection.insert_many(old)
    await collection.create_index([("organizationId", 1), ("_id", 1)], name="org_id")  # as before

    async with started_again(settings) as http:
        mine = Org(http)
        mine.id, mine.headers = org, auth(token(org=org))
        assert await import_numbers(mine, ["+14155559999"]) == 1
        seen, _, total = await walk(mine, 100)
        assert seen == [*numbers, "+14155559999"] and total == 251
        found, _, total = await walk(mine, 10, "+14155550")
        assert found == [n for n in numbers if n.startswith("+14155550")] and total == 100
        assert await Suppression.find({"organizationId": org, "page": None}).count() == 0
        assert "org_id" not in {index["name"] async for index in await collection.list_indexes()}
