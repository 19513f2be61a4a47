"""Input wrong as a whole: a clear field-level error, the legacy envelope, and nothing written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson import ObjectId

from core.config import Settings
from tests.support import auth, client_with, counts, token
from tests.support import campaign_body as body

ORG = ObjectId()


async def refused(http: httpx.AsyncClient, payload: Any, status: int = 400) -> list[dict[str, Any]]:
    """Posts, asserts the refusal and that nothing was written, returns `errors`."""
    response = await http.post("/api/campaigns", json=payload, headers=auth(token(org=ORG)))
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["success"] is False
    assert isinstance(envelope["message"], str) and envelope["message"]
    assert "detail" not in envelope
    assert await counts("campaigns", "contacts", "recipients") == {
        "campaigns": 0,
        "contacts": 0,
        "recipients": 0,
    }
    errors: list[dict[str, Any]] = envelope.get("errors", [])
    return errors


def fields(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in errors]


@pytest.mark.parametrize("name", [..., "", "   "])
async def test_missing_or_blank_name(client: httpx.AsyncClient, name: Any) -> None:
    assert fields(await refused(client, body(name=name))) == [("name", "REQUIRED")]


@pytest.mark.parametrize("message", [..., "", "  \n "])
async def test_missing_or_blank_message(client: httpx.AsyncClient, message: Any) -> None:
    assert fields(await refused(client, body(message=message))) == [("message", "REQUIRED")]


async def test_all_whole_request_errors_are_reported_together(client: httpx.AsyncClient) -> None:
    errors = await refused(
        client, body(name="", message="Hi {{fristName}}", type="email", status="sent")
    )
    assert fields(errors) == [
        ("name", "REQUIRED"),
        ("message", "UNKNOWN_PLACEHOLDER"),
        ("type", "UNSUPPORTED_TYPE"),
        ("status", "INVALID_STATUS"),
    ]


async def test_boolean_as_string_is_refused(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(isAutopilot="yes"))
    assert fields(errors) == [("isAutopilot", "INVALID_TYPE")]
    assert errors[0]["message"] == "Expected true or false, got str"


async def test_object_where_a_list_is_expected_is_refused(client: httpx.AsyncClient) -> None:
    assert fields(await refused(client, body(newContacts={}))) == [("newContacts", "INVALID_TYPE")]


async def test_body_that_is_not_an_object_is_refused(client: httpx.AsyncClient) -> None:
    assert fields(await refused(client, [1, 2])) == [("body", "INVALID_TYPE")]


async def test_malformed_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/campaigns",
        content=b'{"name": ',
        headers={**auth(token(org=ORG)), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_JSON"


@pytest.mark.parametrize("date", ["tomorrow", "2026-13-40T00:00:00Z", "20/05/2027 15:00"])
async def test_malformed_schedule_date(client: httpx.AsyncClient, date: str) -> None:
    assert fields(await refused(client, body(scheduleDate=date))) == [
        ("scheduleDate", "INVALID_DATE")
    ]


async def test_schedule_date_without_zone(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(scheduleDate="2099-05-20T15:00:00"))
    assert errors[0]["message"].startswith("Include a time zone")


async def test_past_schedule_date_including_the_seeds_own(client: httpx.AsyncClient) -> None:
    assert fields(await refused(client, body(scheduleDate="2026-05-20T15:00:00.000Z"))) == [
        ("scheduleDate", "DATE_IN_PAST")
    ]


@pytest.mark.parametrize("status", ["sent", "completed", "SENDING"])
async def test_status_other_than_draft_or_scheduled(client: httpx.AsyncClient, status: str) -> None:
    assert fields(await refused(client, body(status=status))) == [("status", "INVALID_STATUS")]


async def test_empty_status_means_not_given(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/campaigns", json=body(status=""), headers=auth(token()))
    assert response.status_code == 201
    assert response.json()["data"]["status"] == "scheduled"  # it has a date


async def test_type_other_than_sms(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(type="email"))
    assert errors == [
        {
            "field": "type",
            "code": "UNSUPPORTED_TYPE",
            "message": "Campaign type 'email' is not supported; use 'sms'",
        }
    ]


async def test_unknown_template_placeholder(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(message="Hi {{fristName}} {{company}}"))
    assert fields(errors) == [("message", "UNKNOWN_PLACEHOLDER")] * 2
    assert "{{fristName}}" in errors[0]["message"] and "firstName" in errors[0]["message"]


async def test_rendering_over_1600_characters(client: httpx.AsyncClient) -> None:
    errors = await refused(
        client,
        body(
            message="x" * 1590 + " {{firstName}}",
            newContacts=[{"firstName": "Alexandra!", "phoneNumber": "+14155550101"}],
        ),
    )
    assert fields(errors) == [("message", "MESSAGE_TOO_LONG")]


async def test_template_that_cannot_fit_10_segments_for_anyone(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(message="x" * 1530 + " {{firstName}}"))
    assert fields(errors) == [("message", "MESSAGE_TOO_LONG")]
    assert "at least 11 SMS segments" in errors[0]["message"]


async def test_331_emoji_are_11_ucs2_segments_and_refused(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(message="\U0001f600" * 331))
    assert fields(errors) == [("message", "MESSAGE_TOO_LONG")]


async def test_template_over_6400_characters_is_refused_before_parsing(
    client: httpx.AsyncClient,
) -> None:
    errors = await refused(client, body(message="{{ " * 100_000))
    assert fields(errors) == [("message", "MESSAGE_TOO_LONG")]


async def test_contact_whose_rendering_is_over_10_segments_is_left_out(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/campaigns",
        json=body(
            message="x" * 1500 + " {{firstName}}",
            newContacts=[
                {"firstName": "Al", "phoneNumber": "+14155550101"},
                {"firstName": "B" * 60, "phoneNumber": "+14155550102"},
            ],
        ),
        headers=auth(token(org=ORG)),
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["stats"]["total"] == 1
    assert [d["code"] for d in data["failedDetails"]] == ["MESSAGE_TOO_LONG"]
    assert data["messageStats"]["segments"] == 10


async def test_rendering_of_exactly_10_segments_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/campaigns",
        json=body(
            message="x" * 1520 + " {{firstName}}",
            newContacts=[{"firstName": "Alex", "phoneNumber": "+14155550101"}],
        ),
        headers=auth(token(org=ORG)),
    )
    assert response.status_code == 201
    # the limit is the template's; a first message's opt-out footer is counted on top
    assert response.json()["data"]["messageStats"]["segments"] == 11


@pytest.mark.parametrize("bad", ["abc", "665f1a0c0e0a4b001a2c9f0", "665f1a0c0e0a4b001a2c9fzz"])
async def test_malformed_object_ids(client: httpx.AsyncClient, bad: str) -> None:
    errors = await refused(client, body(userIds=[bad], selectedExistingContacts=[{"_id": bad}]))
    assert fields(errors) == [
        ("selectedExistingContacts.0._id", "INVALID_ID"),
        ("userIds.0", "INVALID_ID"),
    ]


async def test_operator_objects_where_ids_are_expected(client: httpx.AsyncClient) -> None:
    errors = await refused(
        client, body(userIds=[{"$gt": ""}], selectedExistingContacts=[{"_id": {"$ne": None}}])
    )
    assert fields(errors) == [
        ("selectedExistingContacts.0._id", "INVALID_TYPE"),
        ("userIds.0", "INVALID_TYPE"),
    ]


async def test_operator_object_in_segmentation_is_refused(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(segmentation={"contactStatus": {"$regex": ".*"}}))
    assert errors and all(e["field"].startswith("segmentation.contactStatus") for e in errors)


async def test_csv_without_a_phone_column(client: httpx.AsyncClient) -> None:
    errors = await refused(client, body(rawCsvData={"csv": "First Name,Email\nAna,a@x.io\n"}))
    assert fields(errors) == [("rawCsvData.columns.phoneNumber", "CSV_MISSING_COLUMN")]


async def test_csv_mapping_naming_a_missing_header(client: httpx.AsyncClient) -> None:
    errors = await refused(
        client,
        body(
            rawCsvData={"csv": "Name,Tel\nAna,+14155550101\n", "columns": {"phoneNumber": "Phone"}}
        ),
    )
    assert fields(errors) == [("rawCsvData.columns.phoneNumber", "CSV_MISSING_COLUMN")]


async def test_scheduled_with_every_recipient_invalid_is_refused(
    client: httpx.AsyncClient,
) -> None:
    errors = await refused(
        client, body(newContacts=[{"phoneNumber": "12"}], userIds=[str(ObjectId())])
    )
    assert fields(errors) == [("status", "NO_RECIPIENTS")]


async def test_draft_with_every_recipient_invalid_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/campaigns",
        json=body(status="draft", newContacts=[{"phoneNumber": "12"}]),
        headers=auth(token(org=ORG)),
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["status"], data["stats"]["total"]) == ("draft", 0)
    assert data["failedDetails"][0]["code"] == "INVALID_PHONE"


async def test_body_of_10_mb_is_refused_with_413(client: httpx.AsyncClient) -> None:
    payload = body(name="x" * (10 * 1024 * 1024))
    errors = await refused(client, payload, status=413)
    assert fields(errors) == [("body", "PAYLOAD_TOO_LARGE")]


async def test_chunked_body_over_the_limit_is_refused_with_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(12):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = await client.post(
        "/api/campaigns",
        content=chunks(),
        headers={**auth(token(org=ORG)), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["success"] is False


async def test_one_recipient_over_the_limit_is_refused_with_413(
    mongo_uri: str, settings: Settings
) -> None:
    """The limit is 50,000 unless configured; one over a configured 5 is the same rule."""
    assert settings.max_recipients == 50_000
    contacts = [{"phoneNumber": f"+1212{2000000 + i:07d}"} for i in range(6)]
    async with client_with(mongo_uri, max_recipients=5) as http:
        errors = await refused(http, body(newContacts=contacts), status=413)
    assert fields(errors) == [("body", "TOO_MANY_RECIPIENTS")]


async def test_recipient_limit_is_configurable(mongo_uri: str) -> None:
    three = [{"phoneNumber": f"+1415555010{i}"} for i in range(3)]
    twice = [{"phoneNumber": "+14155550100"}, {"phoneNumber": "(415) 555-0100"}]
    async with client_with(mongo_uri, max_recipients=2) as http:
        over = await http.post(
            "/api/campaigns", json=body(newContacts=three), headers=auth(token())
        )
        deduplicated = await http.post(
            "/api/campaigns", json=body(newContacts=twice), headers=auth(token())
        )
    assert over.status_code == 413
    assert deduplicated.status_code == 201
