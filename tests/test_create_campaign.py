"""`POST /api/campaigns`: every recipient source, partial failures, and what is stored."""

from __future__ import annotations

from typing import Any

import httpx
from bson import ObjectId

from models import Contact, Recipient
from tests.support import auth, counts, future, make_contact, token

ORG = ObjectId()


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Spring outreach",
        "message": "Hi {{firstName|there}}, still interested?",
        "scheduleDate": future(),
        "type": "sms",
    }
    base.update(overrides)
    return base


async def create(http: httpx.AsyncClient, org: ObjectId = ORG, **overrides: Any) -> httpx.Response:
    return await http.post("/api/campaigns", json=body(**overrides), headers=auth(token(org=org)))


async def test_new_contacts_are_created_in_e164(client: httpx.AsyncClient) -> None:
    response = await create(
        client,
        newContacts=[
            {"firstName": "Jamie", "phoneNumber": "(415) 555-0133"},
            {
                "firstName": "Ana",
                "lastName": "Li",
                "phoneNumber": "+44 7911 123456",
                "email": "a@x.io",
            },
        ],
    )
    assert response.status_code == 201
    phones = sorted(c.phoneNumber for c in await Contact.find_all().to_list())
    assert phones == ["+14155550133", "+447911123456"]
    assert response.json()["data"]["stats"]["total"] == 2


async def test_existing_phone_is_reused_not_duplicated(client: httpx.AsyncClient) -> None:
    existing = await make_contact(ORG, "+14155550133", firstName="Jamie")
    response = await create(
        client, newContacts=[{"firstName": "J", "phoneNumber": "+1 415 555 0133"}]
    )
    assert response.status_code == 201
    assert response.json()["data"]["userIds"] == [str(existing.id)]
    assert (await counts("contacts"))["contacts"] == 1


async def test_same_phone_in_another_organization_is_a_different_contact(
    client: httpx.AsyncClient,
) -> None:
    await make_contact(ObjectId(), "+14155550133")
    response = await create(client, newContacts=[{"phoneNumber": "+14155550133"}])
    assert response.status_code == 201
    assert (await counts("contacts"))["contacts"] == 2


async def test_invalid_phone_is_reported_and_the_rest_is_created(client: httpx.AsyncClient) -> None:
    response = await create(
        client,
        newContacts=[
            {"firstName": "Ok", "phoneNumber": "+14155550133"},
            {"firstName": "Bad", "phoneNumber": "12"},
            {"firstName": "None"},
        ],
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["stats"]["total"] == 1
    assert [(d["index"], d["code"], d["value"]) for d in data["failedDetails"]] == [
        (1, "INVALID_PHONE", "12"),
        (2, "MISSING_PHONE", None),
    ]
    assert all(
        d["source"] == "newContacts" and d["field"] == "phoneNumber" for d in data["failedDetails"]
    )


async def test_foreign_and_unknown_ids_are_failed_user_ids(client: httpx.AsyncClient) -> None:
    mine = await make_contact(ORG, "+14155550100", firstName="Sam")
    foreign = await make_contact(ObjectId(), "+14155550101", firstName="Eve")
    unknown = ObjectId()
    response = await create(
        client,
        selectedExistingContacts=[{"_id": str(foreign.id)}],
        userIds=[str(mine.id), str(unknown)],
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["userIds"] == [str(mine.id)]
    assert data["failedUserIds"] == [str(foreign.id), str(unknown)]
    assert {d["code"] for d in data["failedDetails"]} == {"CONTACT_NOT_FOUND"}
    assert [d["source"] for d in data["failedDetails"]] == ["selectedExistingContacts", "userIds"]


async def test_recipients_are_deduplicated_across_sources(client: httpx.AsyncClient) -> None:
    sam = await make_contact(ORG, "+14155550100", firstName="Sam", contactStatus="New Lead")
    response = await create(
        client,
        newContacts=[
            {"firstName": "Sam", "phoneNumber": "+14155550100"},
            {"firstName": "Sam", "phoneNumber": "415-555-0100"},
        ],
        selectedExistingContacts=[{"_id": str(sam.id)}],
        userIds=[str(sam.id)],
        rawCsvData={"csv": "First Name,Phone\nSam,+14155550100\n"},
        segmentation={"contactStatus": "New Lead"},
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["userIds"] == [str(sam.id)]
    assert data["stats"]["total"] == 1
    assert await Recipient.find_all().count() == 1


async def test_opted_out_contacts_are_excluded_and_reported(client: httpx.AsyncClient) -> None:
    out = await make_contact(ORG, "+14155550100", firstName="Sam", optedOut=True)
    ok = await make_contact(ORG, "+14155550101", firstName="Ana")
    response = await create(client, userIds=[str(out.id), str(ok.id)])
    data = response.json()["data"]
    assert data["userIds"] == [str(ok.id)]
    assert data["failedUserIds"] == [str(out.id)]
    assert data["failedDetails"][0]["code"] == "OPTED_OUT"


async def test_csv_rows_become_contacts_and_bad_rows_are_reported_by_row(
    client: httpx.AsyncClient,
) -> None:
    csv = (
        "First Name,Last Name,Mobile,Email\n"
        "Ana,Li,+14155550101,ana@x.io\n"
        "Bo,,not-a-phone,\n"
        "\n"
        "Cy,Do,+14155550102,,extra\n"
        "Di,Ek,(415) 555-0103,\n"
    )
    response = await create(client, rawCsvData={"csv": csv})
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["stats"]["total"] == 2
    assert [(d["index"], d["code"]) for d in data["failedDetails"]] == [
        (3, "INVALID_PHONE"),
        (5, "CSV_RAGGED_ROW"),
    ]
    ana = await Contact.find_one({"phoneNumber": "+14155550101"})
    assert ana is not None and (ana.firstName, ana.lastName, ana.email) == ("Ana", "Li", "ana@x.io")


async def test_csv_headers_and_rows_with_a_column_mapping(client: httpx.AsyncClient) -> None:
    response = await create(
        client,
        rawCsvData={
            "headers": ["Nombre", "Telefono"],
            "rows": [["Ana", "+14155550101"], ["Bo", "+14155550102"]],
            "columns": {"firstName": "Nombre", "phoneNumber": "Telefono"},
        },
    )
    assert response.status_code == 201
    assert response.json()["data"]["stats"]["total"] == 2


async def test_segmentation_selects_matching_contacts_of_the_organization(
    client: httpx.AsyncClient,
) -> None:
    hit = await make_contact(
        ORG, "+14155550100", firstName="A", contactStatus="New Lead", tags=["vip"], process="p1"
    )
    await make_contact(ORG, "+14155550101", firstName="B", contactStatus="Won", tags=["vip"])
    await make_contact(
        ObjectId(),
        "+14155550102",
        firstName="C",
        contactStatus="New Lead",
        tags=["vip"],
        process="p1",
    )
    response = await create(
        client, segmentation={"contactStatus": ["New Lead"], "tags": ["vip"], "process": "p1"}
    )
    assert response.status_code == 201
    assert response.json()["data"]["userIds"] == [str(hit.id)]


async def test_assignment_round_robin_is_stored_on_each_recipient(
    client: httpx.AsyncClient,
) -> None:
    me = ObjectId()
    first = await client.post(
        "/api/campaigns", json=body(newContacts=[]), headers=auth(token(org=ORG, user=me))
    )
    assert first.status_code == 400  # scheduled with no recipients; also registers no user
    from models import User

    other = ObjectId()
    await User(userId=other, organizationId=ORG, fullName="Bea Rep").insert()
    contacts = [{"firstName": f"C{i}", "phoneNumber": f"+1415555010{i}"} for i in range(4)]
    response = await client.post(
        "/api/campaigns",
        json=body(
            newContacts=contacts,
            assignment={"strategy": "round_robin", "userIds": [str(me), str(other)]},
        ),
        headers=auth(token(org=ORG, user=me)),
    )
    assert response.status_code == 201, response.text
    assigned = [r.assignedTo for r in await Recipient.find_all().sort("+_id").to_list()]
    assert assigned == [me, other, me, other]


async def test_assignment_to_a_user_of_another_organization_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await create(
        client,
        newContacts=[{"phoneNumber": "+14155550100"}],
        assignment={"strategy": "single", "userIds": [str(ObjectId())]},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "assignment.userIds.0"
    assert response.json()["errors"][0]["code"] == "UNKNOWN_USER"


async def test_missing_placeholder_value_excludes_the_contact_not_says_hi_comma(
    client: httpx.AsyncClient,
) -> None:
    response = await create(
        client,
        message="Hi {{firstName}}, still interested?",
        newContacts=[
            {"firstName": "Ana", "phoneNumber": "+14155550101"},
            {"phoneNumber": "+14155550102"},
        ],
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["stats"]["total"] == 1
    assert data["messageStats"]["recipientsMissingValues"] == 1
    assert data["failedDetails"][0]["code"] == "MISSING_TEMPLATE_VALUE"
    assert "{{firstName|there}}" in data["failedDetails"][0]["message"]


async def test_message_stats_count_segments_for_the_longest_rendering(
    client: httpx.AsyncClient,
) -> None:
    long_name = "B" * 150
    response = await create(
        client,
        message="Hi {{firstName}}!",
        newContacts=[
            {"firstName": "Al", "phoneNumber": "+14155550101"},
            {"firstName": long_name, "phoneNumber": "+14155550102"},
        ],
    )
    stats = response.json()["data"]["messageStats"]
    assert stats == {  # 154 characters, and the opt-out footer of a first message (22)
        "encoding": "GSM-7",
        "segments": 2,
        "characters": 176,
        "recipientsMissingValues": 0,
    }
    unicode = await create(
        client,
        message="Olá {{firstName}} 👋",
        newContacts=[{"firstName": "Zé", "phoneNumber": "+14155550103"}],
    )
    assert unicode.json()["data"]["messageStats"]["encoding"] == "UCS-2"


async def test_status_defaults_to_draft_without_a_date(client: httpx.AsyncClient) -> None:
    response = await create(client, scheduleDate=None, newContacts=[])
    assert response.status_code == 201
    assert response.json()["data"]["status"] == "draft"
    assert response.json()["data"]["scheduleDate"] is None


async def test_explicit_draft_with_a_date_stays_draft(client: httpx.AsyncClient) -> None:
    response = await create(client, status="draft", newContacts=[{"phoneNumber": "+14155550100"}])
    assert response.json()["data"]["status"] == "draft"


async def test_zone_offset_dates_are_stored_in_utc(client: httpx.AsyncClient) -> None:
    response = await create(
        client,
        scheduleDate="2099-05-20T17:00:00+02:00",
        newContacts=[{"phoneNumber": "+14155550100"}],
    )
    assert response.json()["data"]["scheduleDate"] == "2099-05-20T15:00:00.000Z"


async def test_campaign_lists_in_openapi_with_request_and_response_models(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/campaigns"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CreateCampaignInput"
    )
    assert operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CampaignEnvelope"
    )
    assert set(operation["responses"]) >= {"201", "400", "401", "409", "413"}


async def test_racing_requests_with_one_new_phone_share_one_contact(
    client: httpx.AsyncClient,
) -> None:
    import asyncio

    org = ObjectId()
    responses = await asyncio.gather(
        *(
            create(client, org, newContacts=[{"firstName": "Ana", "phoneNumber": "+14155550177"}])
            for _ in range(6)
        )
    )
    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["data"]["userIds"][0] for r in responses}) == 1
    assert await Contact.find({"organizationId": org}).count() == 1
