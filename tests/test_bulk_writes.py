"""Creation is bulk: the number of database commands does not grow with the contacts, and its
batches of inserts end together."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from bson import ObjectId
from pymongo.errors import BulkWriteError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from main import create_app
from models import Recipient
from services.storage.tenancy import IN_CHUNK, INSERTS_AT_ONCE, Tenant
from tests.support import (
    auth,
    future,
    make_contacts,
    make_settings,
    principal,
    release_database,
    token,
)

APP_COMMANDS = {
    "insert",
    "find",
    "update",
    "delete",
    "findAndModify",
    "aggregate",
    "count",
    "getMore",
}


class CommandCounter(CommandListener):
    """Counts data commands sent by the app's own client."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.filters: list[dict[str, object]] = []
        self.recording = False

    def started(self, event: CommandStartedEvent) -> None:
        if self.recording and event.command_name in APP_COMMANDS:
            self.counts[event.command_name] += 1
            if event.command_name == "find":
                self.filters.append(dict(event.command["filter"]))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(mongo_uri: str) -> AsyncIterator[tuple[httpx.AsyncClient, CommandCounter]]:
    # No sweep for pending replies while commands are counted (it runs at start).
    settings = make_settings(mongo_uri, inbound_sweep_seconds=3600)
    counter = CommandCounter()
    app = create_app(settings, event_listeners=[counter])
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http, counter
    await release_database(settings)


async def _commands_for(
    http: httpx.AsyncClient,
    counter: CommandCounter,
    org: ObjectId,
    phones: list[str],
    existing_ids: list[str],
) -> Counter[str]:
    body = {
        "name": "Bulk",
        "message": "Hi {{firstName|there}}",
        "newContacts": [{"firstName": "N", "phoneNumber": p} for p in phones],
        "userIds": existing_ids,
        "scheduleDate": future(),
    }
    counter.counts.clear()
    counter.filters.clear()
    counter.recording = True
    response = await http.post("/api/campaigns", json=body, headers=auth(token(org=org)))
    counter.recording = False
    assert response.status_code == 201, response.text
    assert response.json()["data"]["stats"]["total"] == len(phones) + len(existing_ids)
    return Counter(counter.counts)


def _phones(start: int, n: int) -> list[str]:
    return [f"+1212{2000000 + i:07d}" for i in range(start, start + n)]


async def test_command_count_does_not_grow_with_contacts(
    counted: tuple[httpx.AsyncClient, CommandCounter],
) -> None:
    http, counter = counted
    small = await _commands_for(http, counter, ObjectId(), _phones(0, 5), [])
    large = await _commands_for(http, counter, ObjectId(), _phones(100, 2000), [])
    # Enough recipients go in `INSERTS_AT_ONCE` commands at once.
    assert large - small == Counter({"insert": INSERTS_AT_ONCE - 1})
    assert small - large == Counter()
    # user, page claims, contacts, recipients (two commands), campaign; one probe for the last
    # page, one read; the running totals of contacts and campaigns; the campaign list's page
    # (a probe for the last one, twice when it claims one, and the claim), whether the
    # suppression list holds anything, the opt-out footer, and the status's running total
    assert sum(large.values()) <= 14 + INSERTS_AT_ONCE, large


async def _with_known_contacts(
    http: httpx.AsyncClient, counter: CommandCounter, n: int, *, bystanders: int = 0
) -> Counter[str]:
    """Creates a campaign of n typed-in phones (half already stored) and n existing ids, in an
    organization that also holds `bystanders` other contacts."""
    org = ObjectId()
    phones = _phones(10_000, n)
    await make_contacts(org, phones[: n // 2], firstName="Old")
    await make_contacts(org, _phones(40_000, bystanders), firstName="By")
    existing = [str(c.id) for c in await make_contacts(org, _phones(20_000, n), firstName="Ex")]
    return await _commands_for(http, counter, org, phones, existing)


def _in_lists(counter: CommandCounter) -> list[int]:
    """The length of each `$in` list the recorded finds sent."""
    return [
        len(value["$in"])
        for f in counter.filters
        for value in f.values()
        if isinstance(value, dict) and "$in" in value
    ]


@pytest.mark.parametrize("bystanders", [0, 600])
async def test_a_list_of_ids_costs_one_in_per_chunk_whatever_the_organization(
    counted: tuple[httpx.AsyncClient, CommandCounter], bystanders: int
) -> None:
    """A list is read in `$in` commands of at most `IN_CHUNK` values: their number follows the
    list, not the organization (that each is read from an index, on the embedded server too,
    is proven in test_database_guarantees.py)."""
    http, counter = counted
    n = IN_CHUNK + 10
    counts = await _with_known_contacts(http, counter, n, bystanders=bystanders)
    # the ids in two `$in`, the n/2 reused phones in one
    assert sorted(_in_lists(counter)) == sorted([IN_CHUNK, 10, n // 2]), _in_lists(counter)
    # + the probes for the contact list's last page and the campaign list's last number, the
    # suppression list's and the footer's reads
    assert counts["find"] == 3 + 2 + 2, counts


async def test_a_few_ids_and_reused_phones_cost_one_in_each(
    counted: tuple[httpx.AsyncClient, CommandCounter],
) -> None:
    http, counter = counted
    counts = await _with_known_contacts(http, counter, 6)
    assert sorted(_in_lists(counter)) == [3, 6], counter.filters
    assert counts["find"] == 2 + 2 + 2, counts


def _recipient(
    campaign: ObjectId, seq: int, document_id: ObjectId | None = None
) -> dict[str, object]:
    return {
        "_id": document_id or ObjectId(),
        "campaignId": campaign,
        "contactId": ObjectId(),
        "seq": seq,
        "status": "pending",
    }


async def test_a_failed_batch_stops_the_rest_and_is_raised_once_those_in_flight_ended(
    app: object,
) -> None:
    """Batches go `INSERTS_AT_ONCE` at a time; after one fails no other starts, and the failure
    is raised once the batches in flight have ended, so the caller's cleanup finds all that
    landed and nothing lands after it."""
    tenant = Tenant(principal(ObjectId()))
    taken = ObjectId()
    await tenant.raw_insert_many(Recipient, [_recipient(ObjectId(), 0, taken)], ordered=True)
    campaign = ObjectId()
    documents = [_recipient(campaign, seq) for seq in range(3000)]
    documents[10]["_id"] = taken  # the first batch of 300 fails there (ordered)
    with pytest.raises(BulkWriteError):
        await tenant.insert_in_batches(Recipient, documents, batch=300)
    rows = await tenant.raw_find(Recipient, {"campaignId": campaign}).to_list()
    landed = {row["seq"] for row in rows}
    # Before the duplicate, its batch is in; what lands past it is the server's (FerretDB v1
    # goes on with its later parts, MongoDB stops). Every other batch is in whole or not at all.
    assert set(range(10)) <= landed and 10 not in landed
    for start in range(300, 3000, 300):
        batch = set(range(start, start + 300))
        assert batch <= landed or not batch & landed, start
    assert not set(range(2700, 3000)) <= landed  # the rest did not go on after the failure
    await asyncio.sleep(0.2)  # time for a stray insert to land, if one were still going
    assert await tenant.delete_many(Recipient, {"campaignId": campaign}) == len(landed)
    assert await tenant.count(Recipient, {"campaignId": campaign}) == 0


async def test_a_status_filter_total_sends_no_count(
    counted: tuple[httpx.AsyncClient, CommandCounter],
) -> None:
    """A status filter's total is the statuses' running totals (services/storage/tallies.py),
    over GraphQL and REST: no count, which FerretDB answers by decoding every match."""
    http, counter = counted
    org = ObjectId()
    await _commands_for(http, counter, org, _phones(0, 2), [])
    headers = auth(token(org=org))
    counter.counts.clear()
    counter.recording = True
    query = "{ campaigns(first: 1, filter: {status: [SCHEDULED, DRAFT]}) { totalCount } }"
    body = (await http.post("/graphql", json={"query": query}, headers=headers)).json()
    rest = await http.get("/api/campaigns?status=scheduled&limit=1", headers=headers)
    counter.recording = False
    assert body["data"]["campaigns"]["totalCount"] == 1
    assert rest.json()["pagination"]["total"] == 1
    assert not counter.counts.keys() & {"count", "aggregate"}, counter.counts
