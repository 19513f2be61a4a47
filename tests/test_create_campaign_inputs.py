"""How campaign creation reads unusual input: odd dates, text, CSV, contacts and renderings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.support import auth, client_with, counts, make_contact, token
from tests.support import campaign_body as body

ORG = ObjectId()
ARABIC_INDIC = "+1" + "".join(chr(0x0660 + int(d)) for d in "4155550101")


async def post(http: httpx.AsyncClient, payload: Any) -> httpx.Response:
    return await http.post("/api/campaigns", json=payload, headers=auth(token(org=ORG)))


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_extreme_years_are_invalid_dates_not_500(
    client: httpx.AsyncClient, date: str
) -> None:
    response = await post(client, body(scheduleDate=date, segmentation={"createdAfter": date}))
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [
        "scheduleDate",
        "segmentation.createdAfter",
    ]


async def test_lone_surrogate_is_a_field_error_not_500(client: httpx.AsyncClient) -> None:
    raw = (
        b'{"name": "ok", "message": "hi", "newContacts": [{"firstName": "a\\udc00", '
        b'"phoneNumber": "+14155550101"}]}'
    )
    response = await client.post(
        "/api/campaigns",
        content=raw,
        headers={
            **auth(token(org=ORG)),
            "Content-Type": "application/json",
            "Idempotency-Key": "s",
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "newContacts.0.firstName"
    assert await counts("contacts", "users") == {"contacts": 0, "users": 0}


async def test_failed_details_are_capped_and_counted(client: httpx.AsyncClient) -> None:
    contacts = [{"phoneNumber": "12"}] * 1500 + [{"phoneNumber": "+14155550101"}]
    response = await post(client, body(newContacts=contacts))
    assert response.status_code == 201
    data = response.json()["data"]
    assert (len(data["failedDetails"]), data["failedDetailsTotal"]) == (1000, 1500)
    assert data["stats"]["total"] == 1


async def test_more_csv_rows_than_twice_the_limit_is_413(mongo_uri: str) -> None:
    """Unreadable rows count too: twice the limit of rows is read, one more is refused."""
    csv = "Phone\n+14155550131\n"
    async with client_with(mongo_uri, max_recipients=10) as http:
        over = await post(http, body(rawCsvData={"csv": csv + "x\n" * 20}))
        assert over.status_code == 413
        assert await counts("contacts") == {"contacts": 0}
        at_most = await post(http, body(rawCsvData={"csv": csv + "x\n" * 19}))
    assert at_most.status_code == 201, at_most.text
    assert at_most.json()["data"]["failedDetailsTotal"] == 19


async def test_one_user_in_two_organizations(client: httpx.AsyncClient) -> None:
    user = ObjectId()
    for org in (ObjectId(), ObjectId()):
        response = await client.post(
            "/api/campaigns", json=body(), headers=auth(token(org=org, user=user))
        )
        assert response.status_code == 201, response.text
    assert (await counts("users"))["users"] == 2


@pytest.mark.parametrize(
    "unnamed", [["+14155550102"], ["+14155550111", "(415) 555-0111"]], ids=["one", "repeated"]
)
async def test_refused_scheduled_campaign_leaves_no_new_contact(
    client: httpx.AsyncClient, unnamed: list[str]
) -> None:
    await make_contact(ORG, "+14155550101", firstName="Opted", optedOut=True)
    contacts = [{"firstName": "X", "phoneNumber": "+14155550101"}]
    contacts += [{"phoneNumber": phone} for phone in unnamed]
    response = await post(client, body(message="Hi {{firstName}}", newContacts=contacts))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "NO_RECIPIENTS"
    assert await counts("contacts", "users", "campaigns") == {
        "contacts": 1,
        "users": 0,
        "campaigns": 0,
    }


async def test_reused_contact_is_judged_by_its_stored_values(client: httpx.AsyncClient) -> None:
    await make_contact(ORG, "+14155550101", firstName="")
    response = await post(
        client,
        body(
            message="Hi {{firstName}}",
            newContacts=[
                {"firstName": "Typed", "phoneNumber": "+14155550101"},
                {"firstName": "Bo", "phoneNumber": "+14155550102"},
            ],
        ),
    )
    data = response.json()["data"]
    assert data["stats"]["total"] == 1
    assert data["failedDetails"][0]["code"] == "MISSING_TEMPLATE_VALUE"


async def test_message_stats_use_the_costliest_rendering(client: httpx.AsyncClient) -> None:
    response = await post(
        client,
        body(
            message="Hi {{firstName}}, " + "a" * 140,
            newContacts=[
                {"firstName": "Bartholomew", "phoneNumber": "+14155550101"},
                {"firstName": "Zoë", "phoneNumber": "+14155550102"},
            ],
        ),
    )
    stats = response.json()["data"]["messageStats"]
    assert (stats["encoding"], stats["segments"]) == ("UCS-2", 3)


async def test_opted_out_id_reached_twice_is_still_a_failed_user_id(
    client: httpx.AsyncClient,
) -> None:
    out = await make_contact(ORG, "+14155550101", optedOut=True)
    response = await post(
        client,
        body(status="draft", newContacts=[{"phoneNumber": "+14155550101"}], userIds=[str(out.id)]),
    )
    assert response.json()["data"]["failedUserIds"] == [str(out.id)]


async def test_nulls_are_read_as_absent(client: httpx.AsyncClient) -> None:
    response = await post(
        client, body(isAutopilot=None, userIds=None, type=None, selectedExistingContacts=None)
    )
    assert response.status_code == 201
    assert response.json()["data"]["isAutopilot"] is False


async def test_snapshot_fields_of_existing_contacts_are_ignored(client: httpx.AsyncClient) -> None:
    sam = await make_contact(ORG, "+14165550100", firstName="Sam")
    response = await post(
        client,
        body(
            selectedExistingContacts=[
                {"_id": str(sam.id), "phoneNumber": 14165550100, "firstName": None}
            ]
        ),
    )
    assert response.status_code == 201
    assert str(sam.id) in response.json()["data"]["userIds"]


async def test_csv_with_bare_cr_line_ends(client: httpx.AsyncClient) -> None:
    response = await post(
        client,
        body(newContacts=[], rawCsvData={"csv": "Name,Phone\rAna,+14155550101\rBo,+14155550102\r"}),
    )
    assert response.json()["data"]["stats"]["total"] == 2


async def test_fallback_longer_than_1600_characters_is_a_field_error(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, body(message="Hi {{firstName|" + "a" * 1700 + "}}"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MESSAGE_TOO_LONG"


async def test_csv_rows_split_by_bare_cr_count_toward_the_limit(mongo_uri: str) -> None:
    async with client_with(mongo_uri, max_recipients=10) as http:
        many = "Phone\r" + "+14155550101\r" * 21
        quoted = "Name,Phone\n" + '"a\nb\nc",+14155550101\n' * 8
        too_many = await http.post(
            "/api/campaigns",
            json=body(newContacts=[], rawCsvData={"csv": many}),
            headers=auth(token()),
        )
        multiline = await http.post(
            "/api/campaigns",
            json=body(newContacts=[], rawCsvData={"csv": quoted}),
            headers=auth(token()),
        )
    assert too_many.status_code == 413
    assert multiline.status_code == 201


async def test_non_ascii_digits_normalise_to_the_same_contact(client: httpx.AsyncClient) -> None:
    response = await post(
        client, body(newContacts=[{"phoneNumber": "+14155550101"}, {"phoneNumber": ARABIC_INDIC}])
    )
    assert response.json()["data"]["stats"]["total"] == 1
    assert (await counts("contacts"))["contacts"] == 1


async def test_a_malformed_csv_row_does_not_drop_the_rows_after_it(
    client: httpx.AsyncClient,
) -> None:
    csv = 'Name,Phone\nA,+14155550102\n"B"x,+14155550103\nC,+14155550104\nD,+14155550105\n'
    data = (await post(client, body(newContacts=[], rawCsvData={"csv": csv}))).json()["data"]
    assert data["stats"]["total"] == 3
    assert [(d["index"], d["code"]) for d in data["failedDetails"]] == [(3, "CSV_MALFORMED")]


async def test_opted_out_contacts_in_a_segment_are_counted_not_limited(mongo_uri: str) -> None:
    org = ObjectId()
    async with client_with(mongo_uri, max_recipients=3) as http:
        for i in range(4):
            await make_contact(org, f"+1415555012{i}", firstName="S", tags=["t"], optedOut=(i == 0))
        response = await http.post(
            "/api/campaigns",
            json=body(newContacts=[], segmentation={"tags": ["t"]}),
            headers=auth(token(org=org)),
        )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["stats"]["total"] == 3
    assert [(d["code"], d["value"]) for d in data["failedDetails"]] == [("OPTED_OUT", "1")]


async def test_a_message_that_would_render_empty_is_not_sent(client: httpx.AsyncClient) -> None:
    data = (
        await post(
            client,
            body(
                message="{{firstName|}}",
                newContacts=[
                    {"phoneNumber": "+14155550101"},
                    {"firstName": "Al", "phoneNumber": "+14155550102"},
                ],
            ),
        )
    ).json()["data"]
    assert data["stats"]["total"] == 1
    assert data["failedDetails"][0]["code"] == "EMPTY_MESSAGE"
