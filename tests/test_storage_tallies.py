"""An unfiltered `totalCount` is a running total kept by the writers (services/storage/tallies.py):
it must equal what a count of the organization would say after any mix of creations, reused
phones, imports, concurrent writers and deletions, and never mix organizations."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from bson import ObjectId

from models import Campaign, Change, Contact, Tally
from models.base import utcnow
from scripts import recount
from services.storage import history, migrations, tallies
from services.storage.tenancy import Tenant
from tests.support import Org, auth, create_campaign, future, gql, phones, principal, token

TOTALS = "query { contacts(first: 1) { totalCount } campaigns(first: 1) { totalCount } }"
CREATE = """
mutation($input: CreateContactInput!) { createContact(input: $input) {
  contact { id } userErrors { code } } }
"""
DELETE_CONTACT = "mutation($id: ID!) { deleteContact(id: $id) { deletedId userErrors { code } } }"
CANCEL = "mutation($id: ID!) { cancelCampaign(id: $id) { userErrors { code } } }"
DELETE_CAMPAIGN = "mutation($id: ID!) { deleteCampaign(id: $id) { deletedId } }"


async def _totals(client: httpx.AsyncClient, org: ObjectId) -> tuple[int, int]:
    body = await gql(client, TOTALS, headers=auth(token(org=org)))
    data = body["data"]
    return data["contacts"]["totalCount"], data["campaigns"]["totalCount"]


async def _counted(org: ObjectId) -> tuple[int, int]:
    scope = {"organizationId": org}
    contacts = await Contact.get_pymongo_collection().count_documents(scope)
    campaigns = await Campaign.get_pymongo_collection().count_documents(scope)
    return contacts, campaigns


async def test_totals_follow_creations_imports_and_deletions(client: httpx.AsyncClient) -> None:
    org, other = ObjectId(), ObjectId()
    headers = auth(token(org=org))
    assert await _totals(client, org) == (0, 0)

    made = []
    for phone in ("+14155550100", "+14155550101", "+14155550100"):  # the last one is taken
        body = await gql(client, CREATE, {"input": {"phoneNumber": phone}}, headers=headers)
        made.append(body["data"]["createContact"])
    assert made[2]["userErrors"] and made[2]["contact"] is None
    assert await _totals(client, org) == (2, 0) == await _counted(org)

    # A campaign of typed-in contacts, some of them already stored, and a CSV import.
    await create_campaign(client, org, newContacts=[*phones(30), {"phoneNumber": "+14155550100"}])
    csv = "First Name,Phone\n" + "".join(f"C{i},+1415555{1000 + i:04d}\n" for i in range(12))
    csv += "Again,+14155550101\n"
    await create_campaign(client, org, rawCsvData={"csv": csv})
    assert await _totals(client, org) == (44, 2) == await _counted(org)

    # Writers at once, their phones overlapping: every new contact counted once.
    await asyncio.gather(
        *(
            create_campaign(client, org, newContacts=phones(20, start=100 + 10 * i))
            for i in range(5)
        )
    )
    assert await _totals(client, org) == (44 + 60, 7) == await _counted(org)

    contact_id = made[0]["contact"]["id"]
    for _ in range(2):  # the second delete finds nothing to delete
        await gql(client, DELETE_CONTACT, {"id": contact_id}, headers=headers)
    campaign = await create_campaign(client, org, newContacts=phones(1, start=500))
    await gql(client, CANCEL, {"id": campaign["_id"]}, headers=headers)
    await gql(client, DELETE_CAMPAIGN, {"id": campaign["_id"]}, headers=headers)
    # Another organization's writes and deletes leave these totals alone.
    foreign = await create_campaign(client, other, newContacts=phones(3))
    await gql(client, DELETE_CONTACT, {"id": contact_id}, headers=auth(token(org=other)))
    await gql(client, CANCEL, {"id": foreign["_id"]}, headers=auth(token(org=other)))

    assert await _totals(client, org) == (104, 7) == await _counted(org)
    assert await _totals(client, other) == (3, 1) == await _counted(other)


async def test_a_recount_puts_a_total_right_and_changes_nothing_when_repeated(
    client: httpx.AsyncClient,
) -> None:
    """What an operator (or the migration) does after writes the totals did not see."""
    org = ObjectId()
    await create_campaign(client, org, newContacts=phones(5))
    await Contact.get_pymongo_collection().delete_many({"organizationId": org, "firstName": "P0"})
    tenant = Tenant(principal(org))
    assert await tallies.total(tenant, tallies.CONTACTS) == 5  # did not see the raw delete
    for _ in range(2):
        assert await tallies.recount(tenant, tallies.CONTACTS) == 4
        assert await _totals(client, org) == (4, 1)
    shares = await Tally.find({"organizationId": org, "kind": tallies.CONTACTS}).to_list()
    assert {s.writer for s in shares} >= {tallies.RECOUNT_WRITER}


async def test_a_filtered_count_still_counts_the_matches(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    await create_campaign(client, org, newContacts=phones(4))
    query = 'query { contacts(filter: {search: "P1"}) { totalCount } }'
    body = await gql(client, query, headers=auth(token(org=org)))
    assert body["data"]["contacts"]["totalCount"] == 1


async def _documents(org: ObjectId, kind: str) -> list[Tally]:
    """What a reader of the total reads: the folds, then the entries."""
    query = {"organizationId": org, "kind": {"$in": [kind, f"{kind}:fold"]}}
    return await Tally.find(query).to_list()


async def test_folds_racing_concurrent_writers_lose_and_double_nothing(app: object) -> None:
    """Writers, folds (some dying after their insert) and readers all at once on one
    organization's total, three times over: every read lies between what was written before
    it began and what was written before it ended, the total ends exact, and what a reader
    reads stays a few documents."""
    for _ in range(3):
        await _race(ObjectId())
    # Another organization's total is its own.
    assert await tallies.total(Tenant(principal(ObjectId())), tallies.CONTACTS) == 0


async def _race(org: ObjectId) -> None:
    tenant = Tenant(principal(org))
    kind = tallies.CONTACTS
    started = completed = 0
    stop = asyncio.Event()
    outside: list[tuple[int, int, int]] = []
    wins: list[bool] = []

    async def writer(i: int) -> None:
        nonlocal started, completed
        for j in range(40):
            delta = (i * 7 + j) % 4  # 0 to 3: the total only grows, so reads can be bracketed
            started += delta
            await tallies.add(tenant, kind, delta)
            completed += delta

    async def folder(i: int) -> None:
        while not stop.is_set():
            wins.append(await tallies.fold(tenant, kind, at=1, retire=i % 3 != 0))
            await asyncio.sleep(0)

    async def reader() -> None:
        while not stop.is_set():
            low = completed
            seen = await tallies.total(tenant, kind)
            if not low <= seen <= started:
                outside.append((low, seen, started))
            await asyncio.sleep(0)

    background = [asyncio.create_task(folder(i)) for i in range(4)]
    background += [asyncio.create_task(reader()) for _ in range(2)]
    await asyncio.gather(*(writer(i) for i in range(8)))
    stop.set()
    await asyncio.gather(*background)

    assert outside == []
    assert sum(wins) >= 3 and not all(wins)  # folds were inserted, and some lost a race
    assert await tallies.total(tenant, kind) == completed
    await tallies.add(tenant, kind, 1)
    # A last fold, retiring what folds that died after their insert left.
    assert await tallies.fold(tenant, kind, at=1)
    assert await tallies.total(tenant, kind) == completed + 1
    # A reader reads the newest folds and their entries (gone when the folds retire).
    left = await _documents(org, kind)
    folds = [d for d in left if d.fold is not None]
    assert len(folds) <= tallies.KEPT_FOLDS
    assert {d.id for d in left if d.fold is None} <= {i for f in folds for i in f.absorbed}
    retired = await Tally.find({"organizationId": org, "kind": f"{kind}:retired"}).to_list()
    assert retired and all(not r.absorbed for r in retired)


async def test_entries_of_older_layouts_are_folded_like_any(app: object) -> None:
    """A share a process of the previous version kept with `$inc` is an entry like any."""
    org = ObjectId()
    tenant = Tenant(principal(org))
    await Tally.get_pymongo_collection().insert_many(
        [
            {"_id": f"{org}:contacts:host:{pid}:1", "organizationId": org, "kind": "contacts"}
            | {"writer": f"host:{pid}:1", "n": pid}
            for pid in range(1, 41)
        ]
    )
    await tallies.add(tenant, tallies.CONTACTS, 5)
    assert await tallies.total(tenant, tallies.CONTACTS) == 820 + 5
    assert await tallies.fold(tenant, tallies.CONTACTS)  # 41 entries
    for _ in range(2):  # two more folds, by the writer: the first one retires with its entries
        for _ in range(tallies.FOLD_AT):
            await tallies.add(tenant, tallies.CONTACTS, 1)
    assert await tallies.total(tenant, tallies.CONTACTS) == 825 + 2 * tallies.FOLD_AT
    left = {d.writer for d in await _documents(org, tallies.CONTACTS)}
    assert not {w for w in left if w.startswith("host:")}


STATUSES = ("DRAFT", "SCHEDULED", "SENDING", "PAUSED", "COMPLETED", "CANCELLED")
STATUS_TOTALS = (
    "query { "
    + " ".join(
        f"{s}: campaigns(first: 1, filter: {{status: [{s}]}}) {{ totalCount }}" for s in STATUSES
    )
    + " both: campaigns(first: 1, filter: {status: [DRAFT, PAUSED, DRAFT]}) { totalCount } }"
)


async def _status_totals(client: httpx.AsyncClient, org: ObjectId) -> dict[str, int]:
    body = await gql(client, STATUS_TOTALS, headers=auth(token(org=org)))
    return {name: value["totalCount"] for name, value in body["data"].items()}


async def _counted_by_status(org: ObjectId) -> dict[str, int]:
    collection = Campaign.get_pymongo_collection()
    counted = {
        s: await collection.count_documents({"organizationId": org, "status": s.lower()})
        for s in STATUSES
    }
    return {**counted, "both": counted["DRAFT"] + counted["PAUSED"]}


async def test_status_totals_follow_every_status_change(client: httpx.AsyncClient) -> None:
    """A status filter's `totalCount` (and the REST list's `pagination.total`) is a running
    total per status, moved by every status change: it equals a count of each status after
    creations in either status, a copy, scheduling, pausing, resuming, cancelling, refused
    moves and deletions, and never mixes organizations."""
    org, other = Org(client), Org(client)
    drafts = [await org.create(2, start=10 * i) for i in range(3)]
    scheduled = await create_campaign(client, org.id, newContacts=phones(2, start=90))
    foreign = await other.create(2)
    copy = (
        await gql(
            client,
            f'mutation {{ duplicateCampaign(id: "{scheduled["_id"]}") {{ campaign {{ id }} }} }}',
            headers=org.headers,
        )
    )["data"]["duplicateCampaign"]["campaign"]["id"]
    assert await _status_totals(client, org.id) == await _counted_by_status(org.id)
    assert (await _status_totals(client, org.id))["DRAFT"] == 4

    await org.mutate("pauseCampaign", scheduled["_id"])
    await org.mutate("resumeCampaign", scheduled["_id"])
    await org.mutate("pauseCampaign", scheduled["_id"])
    # Refused (a draft cannot be paused): nothing moves.
    body = await gql(
        client,
        f'mutation {{ pauseCampaign(id: "{drafts[0]}") {{ userErrors {{ code }} }} }}',
        headers=org.headers,
    )
    assert body["data"]["pauseCampaign"]["userErrors"]
    when = future(3)
    await gql(
        client,
        f'mutation {{ scheduleCampaign(id: "{drafts[1]}", scheduleDate: "{when}") '
        "{ userErrors { code } } }",
        headers=org.headers,
    )
    for campaign_id in (drafts[2], copy):
        await org.mutate("cancelCampaign", campaign_id)
    await gql(
        client, f'mutation {{ deleteCampaign(id: "{copy}") {{ deletedId }} }}', headers=org.headers
    )
    # At once: two requests pausing one campaign move it once.
    await asyncio.gather(
        *(
            gql(
                client,
                f'mutation {{ pauseCampaign(id: "{drafts[1]}") {{ userErrors {{ code }} }} }}',
                headers=org.headers,
            )
            for _ in range(2)
        )
    )
    await other.mutate("cancelCampaign", foreign)

    totals = await _status_totals(client, org.id)
    assert totals == await _counted_by_status(org.id)
    assert (totals["DRAFT"], totals["PAUSED"], totals["CANCELLED"], totals["both"]) == (1, 2, 1, 3)
    assert await _status_totals(client, other.id) == await _counted_by_status(other.id)
    rest = await client.get("/api/campaigns?status=paused,draft&limit=2", headers=org.headers)
    assert rest.json()["pagination"]["total"] == 3


async def test_the_migration_counts_each_status_once(client: httpx.AsyncClient) -> None:
    """Campaigns stored before the status totals are counted by the migration that
    introduced them; a repeat changes nothing."""
    org = Org(client)
    await org.create(2)
    tenant = org.tenant()
    kind = tallies.campaigns_in("draft")
    await Tally.get_pymongo_collection().delete_many({"organizationId": org.id})  # as before it
    assert await tallies.total(tenant, kind) == 0
    await migrations.count_campaigns_by_status()
    for _ in range(2):  # a repeat changes nothing
        assert await tallies.total(tenant, kind) == 1
        assert await _status_totals(client, org.id) == await _counted_by_status(org.id)
        await migrations.count_campaigns_by_status()


async def _stale_claim(
    org: Org, campaign_id: str, action: str, to: str, applied: dict[str, Any]
) -> None:
    """A change claimed by a writer that died before writing the campaign (version 1)."""
    claim = Change(
        organizationId=org.id,
        subjectId=ObjectId(campaign_id),
        version=1,
        action=action,
        fromStatus="scheduled" if action != "delete" else "draft",
        toStatus=to,
        applied=applied,
    )
    await org.tenant().insert(claim)
    long_ago = utcnow() - 2 * history.STALE_AFTER
    await Change.get_pymongo_collection().update_one(
        {"_id": claim.id}, {"$set": {"createdAt": long_ago}}
    )


async def test_a_change_finished_by_many_at_once_moves_the_totals_once(
    client: httpx.AsyncClient,
) -> None:
    """Requests that all find a dead writer's change and finish it at once (on FerretDB each
    sees its write match) move the totals once. They ask to pause, which the finished change
    did: no change follows that a slow finisher's write could race with (on FerretDB, an
    update rewrites the document it read; on MongoDB the version check holds)."""
    org = Org(client)
    made = await create_campaign(client, org.id, newContacts=phones(1))
    await _stale_claim(org, made["_id"], "pause", "paused", {"status": "paused"})
    pause = "mutation($id: ID!) { pauseCampaign(id: $id) { userErrors { code } } }"
    await asyncio.gather(
        *(gql(client, pause, {"id": made["_id"]}, headers=org.headers) for _ in range(8))
    )
    assert (await org.campaign(made["_id"]))["status"] == "paused"
    totals = await _status_totals(client, org.id)
    assert totals == await _counted_by_status(org.id)
    assert (totals["PAUSED"], totals["SCHEDULED"]) == (1, 0)


async def test_a_deletion_counts_the_campaign_until_it_is_gone(client: httpx.AsyncClient) -> None:
    """A deletion whose change was written by a writer that died before deleting the campaign
    leaves it counted in its status; the next deletion deletes it (not refused) and counts it
    out once."""
    org = Org(client)
    draft = await org.create(1)
    await _stale_claim(org, draft, "delete", "deleted", {})
    # Scheduling finds the dead deletion, finishes its change, and is refused.
    schedule = (
        "mutation($id: ID!, $when: DateTime!) { scheduleCampaign(id: $id, scheduleDate: $when) "
        "{ userErrors { code } } }"
    )
    variables = {"id": draft, "when": future(2)}
    body = await gql(client, schedule, variables, headers=org.headers)
    assert body["data"]["scheduleCampaign"]["userErrors"], body
    assert await _status_totals(client, org.id) == await _counted_by_status(org.id)
    assert (await _status_totals(client, org.id))["DRAFT"] == 1
    await asyncio.gather(
        *(gql(client, DELETE_CAMPAIGN, {"id": draft}, headers=org.headers) for _ in range(2))
    )
    assert await _status_totals(client, org.id) == await _counted_by_status(org.id)
    assert (await _status_totals(client, org.id))["DRAFT"] == 0


async def test_an_operator_recounts_what_the_writers_missed(client: httpx.AsyncClient) -> None:
    """`scripts/recount.py` corrects each total of the organization it is given, and only
    that one's, after writes no entry counted (here: a raw delete and a raw status change)."""
    org, other = Org(client), Org(client)
    made = await create_campaign(client, org.id, newContacts=phones(3))
    await other.create(2)
    contacts = Contact.get_pymongo_collection()
    await contacts.delete_many({"organizationId": org.id, "firstName": "P0"})
    await Campaign.get_pymongo_collection().update_one(
        {"_id": ObjectId(made["_id"])}, {"$set": {"status": "paused"}}
    )
    assert (await _status_totals(client, org.id))["PAUSED"] == 0
    for _ in range(2):  # a repeat changes nothing
        counted = await recount.recount([org.id])
        assert list(counted) == [org.id] and counted[org.id][tallies.CONTACTS] == 2
        assert await _totals(client, org.id) == (2, 1) == await _counted(org.id)
        assert await _status_totals(client, org.id) == await _counted_by_status(org.id)
    assert (await _status_totals(client, org.id))["PAUSED"] == 1
    assert recount.main(["--org", "not-an-id"]) == 2
    # `--all` reaches an organization that holds nothing but a drifted total, too.
    await Contact.get_pymongo_collection().delete_many({"organizationId": other.id})
    assert (await _totals(client, other.id))[0] == 2
    assert other.id in await recount.recount(None)
    assert await _totals(client, other.id) == (0, 1) == await _counted(other.id)
