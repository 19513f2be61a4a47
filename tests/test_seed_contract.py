"""The legacy contract, end to end: the seed's exact request over a real socket with curl."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from bson import ObjectId

from core.auth import mint_token
from core.config import Settings
from tests.support import future, make_contact, serving

SEED = json.loads((Path(__file__).parent / "data" / "seed_request.json").read_text())
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

SEED_DATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "_id": str,
    "organizationId": str,
    "name": str,
    "message": str,
    "userIds": list,
    "scheduleDate": str,
    "process": (str, type(None)),
    "contactStatus": (str, type(None)),
    "isAutopilot": bool,
    "type": str,
    "status": str,
    "createdBy": dict,
    "failedUserIds": list,
    "failedDetails": list,
    "stats": dict,
    "createdAt": str,
    "updatedAt": str,
}


async def _curl(url: str, token: str, body: str) -> tuple[int, dict[str, object]]:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "--silent",
        "--show-error",
        "--request",
        "POST",
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        "Content-Type: application/json",
        "--data",
        body,
        "--write-out",
        "\n%{http_code}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(text)


async def test_seed_request_over_curl_returns_the_seed_response_shape(settings: Settings) -> None:
    org, user = ObjectId(), ObjectId()
    async with serving(settings) as base:
        for ref in SEED["selectedExistingContacts"]:
            await make_contact(
                org,
                ref["phoneNumber"],
                id=ref["_id"],
                firstName=ref["firstName"],
                lastName=ref["lastName"],
            )
        token = mint_token(settings, user_id=user, organization_id=org, full_name="Alex Rep")
        body = json.dumps({**SEED, "scheduleDate": future(days=10)})

        status, response = await _curl(f"{base}/api/campaigns", token, body)

    assert status == 201
    assert response["success"] is True
    assert response["message"] == "Campaign created"
    data = response["data"]
    assert isinstance(data, dict)
    for key, kind in SEED_DATA_TYPES.items():
        assert isinstance(data[key], kind), key
    assert OBJECT_ID.match(data["_id"])
    assert data["organizationId"] == str(org)
    assert data["name"] == "Q2 Lead Gen"
    assert data["message"] == SEED["message"]
    assert data["status"] == "scheduled"
    assert data["type"] == "sms"
    assert data["isAutopilot"] is False
    assert all(ISO_MILLIS.match(data[k]) for k in ("scheduleDate", "createdAt", "updatedAt"))
    assert data["createdBy"] == {"_id": str(user), "fullName": "Alex Rep"}
    assert data["failedUserIds"] == [] and data["failedDetails"] == []
    # The seed's four counters, plus `skipped` (recipients left out at send time),
    # `unknown` (handed to a provider by a sender that died), the replies and the retried.
    assert data["stats"] == {
        "total": 3,
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "unknown": 0,
        "successRate": "0%",
        "replied": 0,
        "replyRate": "0%",
        "retried": 0,
    }
    assert data["contactStatus"] == "New Lead"  # the seed's example answer, unasked
    assert len(data["userIds"]) == 3
    assert set(data["userIds"]) >= {"665f1a0c0e0a4b001a2c9f01", "665f1a0c0e0a4b001a2c9f02"}
