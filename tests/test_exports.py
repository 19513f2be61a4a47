"""CSV exports of a campaign's recipients and of contacts: content, tenancy, streaming, and
cells a spreadsheet would run as formulas."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx
from bson import ObjectId

from core.config import Settings
from models import Contact, Recipient
from services.contacts.export import CONTACT_COLUMNS, export_contacts
from services.inputs import ContactFilter
from services.sending.failures import reason_for
from services.storage import positions
from services.storage.csvout import cell
from services.storage.streams import READ_AHEAD, in_order
from services.storage.tenancy import Tenant
from tests.support import Org, auth, campaign_body, phones, token


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


async def seed_contacts(org: ObjectId, count: int, **fields: Any) -> None:
    """Inserts `count` contacts on claimed list pages, as an import would."""
    tenant = Tenant.for_organization(org)
    pages = await positions.claim_pages(tenant, count)
    docs = [
        {
            "_id": ObjectId(),
            "phoneNumber": f"+1212{3000000 + i:07d}",
            "firstName": f"F{i}",
            "lastName": "",
            "tags": [],
            "optedOut": False,
            "page": pages[i // positions.CONTACTS_PER_PAGE],
            **fields,
        }
        for i in range(count)
    ]
    for start in range(0, count, 5000):
        await tenant.raw_insert_many(Contact, docs[start : start + 5000], ordered=False)


async def test_recipients_csv_says_what_happened_to_each_message(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    contacts = [
        {"firstName": "Ana", "lastName": 'O"Neil, Jr.', "phoneNumber": "+14155550101"},
        {"firstName": "Bo", "phoneNumber": "+14155550102"},
        {"firstName": "Cy", "phoneNumber": "+14155550103"},
    ]
    body = campaign_body(newContacts=contacts, scheduleDate=None)
    created = await client.post("/api/campaigns", json=body, headers=org.headers)
    campaign_id = created.json()["data"]["_id"]
    tenant = org.tenant()
    rows = await tenant.raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    by_seq = {row["seq"]: row["_id"] for row in rows}
    now = Tenant.now()
    await tenant.update_each(
        Recipient,
        [
            (
                by_seq[0],
                {
                    "status": "sent",
                    "sentAt": now,
                    "deliveryStatus": "delivered",
                    "deliveryUpdatedAt": now,
                    "replied": True,
                    "repliedAt": now,
                },
            ),
            (by_seq[1], {"status": "failed", "errorCode": "30003", "error": "Unreachable"}),
        ],
    )

    answer = await client.get(f"/api/campaigns/{campaign_id}/recipients.csv", headers=org.headers)

    assert "attachment" in answer.headers["content-disposition"]
    table = rows_of(answer)
    assert [r["phoneNumber"] for r in table] == [c["phoneNumber"] for c in contacts]
    ana, bo, cy = table
    assert ana["lastName"] == 'O"Neil, Jr.'
    assert (ana["status"], ana["deliveryStatus"], ana["replied"]) == ("sent", "delivered", "true")
    assert ana["sentAt"].endswith("Z") and ana["deliveredAt"] and ana["repliedAt"]
    assert (bo["status"], bo["errorCode"]) == ("failed", "30003")
    assert bo["errorReason"] == reason_for("30003").text  # the failure report's words
    assert bo["failedAt"] and not bo["sentAt"]
    assert (cy["status"], cy["sentAt"], cy["failedAt"]) == ("pending", "", "")
    assert cy["replied"] == "false"


async def test_another_organizations_campaign_is_not_found(client: httpx.AsyncClient) -> None:
    owner, other = Org(client), Org(client)
    campaign_id = await owner.create(2)
    path = f"/api/campaigns/{campaign_id}/recipients.csv"

    foreign = await client.get(path, headers=other.headers)
    unknown = await client.get(f"/api/campaigns/{ObjectId()}/recipients.csv", headers=owner.headers)
    malformed = await client.get("/api/campaigns/nope/recipients.csv", headers=owner.headers)
    anonymous = await client.get(path)

    for answer in (foreign, unknown, malformed):
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["code"] == "NOT_FOUND"
    assert anonymous.status_code == 401


async def test_contacts_csv_holds_only_the_callers_contacts_filtered(
    client: httpx.AsyncClient,
) -> None:
    mine, theirs = Org(client), Org(client)
    await mine.create(3, tags=None)
    await theirs.create(2, start=10)
    await client.post(
        "/api/contacts",
        json={"phoneNumber": "+14155550199", "firstName": "Tagged", "tags": ["vip", "ny"]},
        headers=mine.headers,
    )

    everyone = rows_of(await client.get("/api/contacts.csv", headers=mine.headers))
    vip = rows_of(await client.get("/api/contacts.csv?tags=vip", headers=mine.headers))

    assert list(everyone[0]) == list(CONTACT_COLUMNS)
    assert [r["phoneNumber"] for r in everyone] == [p["phoneNumber"] for p in phones(3)] + [
        "+14155550199"
    ]
    assert [(r["firstName"], r["tags"], r["optedOut"]) for r in vip] == [
        ("Tagged", "vip;ny", "false")
    ]


async def test_a_bad_filter_is_refused_before_any_row(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/api/contacts.csv", params={"search": "x" * 101}, headers=auth(token())
    )

    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "TOO_LONG"


async def test_formula_cells_are_neutralised(client: httpx.AsyncClient) -> None:
    org = Org(client)
    names = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    for i, name in enumerate(names):
        answer = await client.post(
            "/api/contacts",
            json={"phoneNumber": f"+1415555{i:04d}", "firstName": name, "lastName": "a,b\nc"},
            headers=org.headers,
        )
        assert answer.status_code == 201, answer.text

    table = rows_of(await client.get("/api/contacts.csv", headers=org.headers))

    assert [r["firstName"] for r in table] == ["'" + name for name in names]
    assert {r["lastName"] for r in table} == {"a,b\nc"}
    assert table[0]["phoneNumber"] == "+14155550000"  # a plain number cannot be a formula


def test_only_text_that_could_start_a_formula_is_quoted() -> None:
    assert [cell(v) for v in ("=1+1", "-3", "+14155550101", "-1-1", "a=b", "\tx", None, True)] == [
        "'=1+1",
        "-3",
        "+14155550101",
        "'-1-1",
        "a=b",
        "'\tx",
        "",
        "true",
    ]


async def test_contacts_stream_a_page_per_chunk(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Ten list pages, more than twice the pages read ahead (`READ_AHEAD`): each page is
    written out as it comes, never the whole file at once."""
    org = ObjectId()
    pages = 10
    count = pages * positions.CONTACTS_PER_PAGE
    assert pages > 2 * READ_AHEAD
    await seed_contacts(org, count)

    export = await export_contacts(Tenant.for_organization(org), settings, ContactFilter())
    sizes = [len(chunk) async for chunk in export.chunks()]

    assert len(sizes) == 1 + pages  # the header, then one chunk per list page
    assert max(sizes) < positions.CONTACTS_PER_PAGE * 200  # a page of rows, never the whole file
    answer = await client.get("/api/contacts.csv", headers=auth(token(org=org)))
    table = rows_of(answer)
    assert len(table) == count
    assert table[-1]["phoneNumber"] == f"+1212{3000000 + count - 1:07d}"


async def test_recipients_of_several_batches_come_in_campaign_order(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    campaign_id = await org.create(250)

    answer = await client.get(f"/api/campaigns/{campaign_id}/recipients.csv", headers=org.headers)

    table = rows_of(answer)
    assert [r["phoneNumber"] for r in table] == [p["phoneNumber"] for p in phones(250)]
    assert {r["firstName"] for r in table[:3]} == {"P0", "P1", "P2"}


async def test_a_download_stopped_early_cancels_the_reads_ahead() -> None:
    started: list[int] = []
    finished: list[int] = []
    cancelled: list[int] = []

    async def read(number: int) -> int:
        started.append(number)
        try:
            if number > 0:
                await asyncio.Event().wait()  # pages after the first never arrive
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        finished.append(number)
        return number

    pages = in_order(read, range(100), ahead=4)
    first = await anext(pages)
    await pages.aclose()  # what Starlette does when the client goes away

    assert first == 0
    assert set(started) <= {0, 1, 2, 3, 4}  # the read-ahead, never the whole range
    assert finished == [0]
    assert cancelled == started[1:]  # nothing left reading after the download ended
