"""Managing campaigns: status moves, edits, deletion, copies, and races between them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from bson import ObjectId

from models import Campaign, Change
from tests.support import auth, create_campaign, future, gql, phones, token

MOVE = """
mutation($id: ID!) {
  %s(id: $id) { campaign { id status } userErrors { field code message } }
}
"""
HISTORY = """
query($id: ID!) {
  campaign(id: $id) { status history { version action fromStatus toStatus by { fullName } } }
}
"""


async def move(http: httpx.AsyncClient, org: ObjectId, name: str, id: str) -> dict[str, Any]:
    body = await gql(http, MOVE % name, {"id": id}, auth(token(org=org)))
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][name]
    return payload


async def test_the_lifecycle_through_graphql(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org)
    id = campaign["_id"]
    steps = [
        ("pauseCampaign", "PAUSED"),
        ("resumeCampaign", "SCHEDULED"),
        ("sendCampaignNow", "SENDING"),
        ("pauseCampaign", "PAUSED"),
        ("resumeCampaign", "SENDING"),  # it had started: resuming sends again
        ("cancelCampaign", "CANCELLED"),
    ]
    for name, status in steps:
        payload = await move(client, org, name, id)
        assert payload["userErrors"] == [] and payload["campaign"]["status"] == status
    again = await move(client, org, "cancelCampaign", id)
    assert again == {
        "campaign": None,
        "userErrors": [
            {
                "field": ["id"],
                "code": "INVALID_TRANSITION",
                "message": "Cannot cancel a campaign whose status is 'cancelled'",
            }
        ],
    }
    history = (await gql(client, HISTORY, {"id": id}, auth(token(org=org))))["data"]["campaign"]
    entries = history["history"]
    assert [e["version"] for e in entries] == list(range(7))
    assert [(e["fromStatus"], e["toStatus"]) for e in entries] == [
        (None, "SCHEDULED"),
        ("SCHEDULED", "PAUSED"),
        ("PAUSED", "SCHEDULED"),
        ("SCHEDULED", "SENDING"),
        ("SENDING", "PAUSED"),
        ("PAUSED", "SENDING"),
        ("SENDING", "CANCELLED"),
    ]
    assert all(e["by"]["fullName"] == "Alex Rep" for e in entries)
    assert history["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("status", "action", "allowed"),
    [
        ("draft", "pause", False),
        ("draft", "resume", False),
        ("draft", "send", True),
        ("draft", "cancel", True),
        ("scheduled", "resume", False),
        ("scheduled", "schedule", True),
    ],
)
async def test_rest_actions_answer_409_for_an_illegal_move(
    client: httpx.AsyncClient, status: str, action: str, allowed: bool
) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org, status=status)
    body = {"scheduleDate": future(3)} if action == "schedule" else None
    response = await client.post(
        f"/api/campaigns/{campaign['_id']}/{action}", json=body, headers=auth(token(org=org))
    )
    if allowed:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "field": "id",
            "code": "INVALID_TRANSITION",
            "message": f"Cannot {action} a campaign whose status is '{status}'",
        }
    ]


async def test_scheduling_needs_a_future_date_and_recipients(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    empty = await create_campaign(client, org, status="draft", newContacts=[], scheduleDate=...)
    path = f"/api/campaigns/{empty['_id']}/schedule"
    past = await client.post(
        path, json={"scheduleDate": "2020-01-01T00:00:00Z"}, headers=auth(token(org=org))
    )
    assert (past.status_code, past.json()["errors"][0]["code"]) == (400, "DATE_IN_PAST")
    nobody = await client.post(path, json={"scheduleDate": future()}, headers=auth(token(org=org)))
    assert (nobody.status_code, nobody.json()["errors"][0]["code"]) == (400, "NO_RECIPIENTS")
    missing = await client.post(path, json={}, headers=auth(token(org=org)))
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "scheduleDate"


async def test_another_organizations_campaign_is_not_found_everywhere(
    client: httpx.AsyncClient,
) -> None:
    theirs = await create_campaign(client, ObjectId())
    mine = token()
    for name in ("pauseCampaign", "cancelCampaign", "deleteCampaign", "duplicateCampaign"):
        selection = "deletedId" if name == "deleteCampaign" else "campaign { id }"
        query = (
            f"mutation($id: ID!) {{ {name}(id: $id) "
            f"{{ {selection} userErrors {{ field code }} }} }}"
        )
        for id in (theirs["_id"], str(ObjectId())):
            body = await gql(client, query, {"id": id}, auth(mine))
            assert body["data"][name]["userErrors"] == [{"field": ["id"], "code": "NOT_FOUND"}]
    answers = []
    for id in (theirs["_id"], str(ObjectId()), "not-an-id"):
        for method, path in (
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/cancel"),
            ("GET", "/recipients"),
        ):
            response = await client.request(
                method,
                f"/api/campaigns/{id}{path}",
                json={} if method == "PATCH" else None,
                headers=auth(mine),
            )
            answers.append((response.status_code, response.json()))
    assert {a[0] for a in answers} == {404}
    assert len({str(a[1]) for a in answers}) == 1  # the same body for a foreign and an unknown id
    stored = await Campaign.find_one({"_id": ObjectId(theirs["_id"])})
    assert stored is not None and stored.status == "scheduled" and stored.version == 0


UPDATE = """
mutation($id: ID!, $input: UpdateCampaignInput!) {
  updateCampaign(id: $id, input: $input) {
    campaign { name message scheduleDate contactStatus isAutopilot stats { total } }
    failedDetails { source index code }
    userErrors { field code }
  }
}
"""


async def test_update_changes_only_the_fields_sent(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org, contactStatus="Hot", newContacts=phones(3))
    body = await gql(
        client,
        UPDATE,
        {"id": campaign["_id"], "input": {"name": "Renamed", "isAutopilot": True}},
        auth(token(org=org)),
    )
    updated = body["data"]["updateCampaign"]
    assert updated["userErrors"] == []
    assert updated["campaign"]["name"] == "Renamed"
    assert updated["campaign"]["isAutopilot"] is True
    assert updated["campaign"]["message"] == campaign["message"]
    assert updated["campaign"]["contactStatus"] == "Hot"
    assert updated["campaign"]["stats"]["total"] == 3


async def test_update_adds_and_removes_recipients_and_reports_the_rest(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    others = await create_campaign(client, org, newContacts=phones(3, start=10))
    campaign = await create_campaign(client, org, newContacts=phones(3))
    unknown, foreign = str(ObjectId()), (await create_campaign(client, ObjectId()))["userIds"][0]
    opted_out = others["userIds"][2]
    response = await client.post(
        f"/api/contacts/{opted_out}/opt-out", json={"reason": "STOP"}, headers=auth(token(org=org))
    )
    assert response.status_code == 200
    add = [
        others["userIds"][0],
        others["userIds"][1],
        unknown,
        foreign,
        opted_out,
        campaign["userIds"][0],
    ]
    remove = [campaign["userIds"][1], unknown]
    response = await client.patch(
        f"/api/campaigns/{campaign['_id']}",
        json={"addRecipients": add, "removeRecipients": remove},
        headers=auth(token(org=org)),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["data"]["stats"]["total"] == 3 + 2 - 1
    assert [(d["source"], d["index"], d["code"]) for d in answer["failedDetails"]] == [
        ("addRecipients", 2, "CONTACT_NOT_FOUND"),
        ("addRecipients", 3, "CONTACT_NOT_FOUND"),
        ("addRecipients", 4, "OPTED_OUT"),
        ("removeRecipients", 1, "NOT_A_RECIPIENT"),
    ]
    detail = await client.get(f"/api/campaigns/{campaign['_id']}", headers=auth(token(org=org)))
    user_ids = detail.json()["data"]["userIds"]
    assert user_ids == [
        campaign["userIds"][0],
        campaign["userIds"][2],
        others["userIds"][0],
        others["userIds"][1],
    ]


async def test_update_refuses_bad_fields_as_a_whole(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org)
    body = await gql(
        client,
        UPDATE,
        {
            "id": campaign["_id"],
            "input": {
                "name": " ",
                "message": "Hi {{nope}}",
                "addRecipients": ["x"],
                "scheduleDate": None,
            },
        },
        auth(token(org=org)),
    )
    assert body["data"]["updateCampaign"]["userErrors"] == [
        {"field": ["input", "addRecipients", "0"], "code": "INVALID_ID"},
        {"field": ["input", "name"], "code": "REQUIRED"},
        {"field": ["input", "message"], "code": "UNKNOWN_PLACEHOLDER"},
    ]
    unscheduled = await gql(
        client,
        UPDATE,
        {"id": campaign["_id"], "input": {"scheduleDate": None}},
        auth(token(org=org)),
    )
    assert unscheduled["data"]["updateCampaign"]["userErrors"] == [
        {"field": ["input", "scheduleDate"], "code": "REQUIRED"}
    ]
    stored = await Campaign.find_one({"_id": ObjectId(campaign["_id"])})
    assert stored is not None and stored.name == campaign["name"] and stored.version == 0


async def test_a_sending_campaign_cannot_be_edited(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org)
    await move(client, org, "sendCampaignNow", campaign["_id"])
    body = await gql(
        client, UPDATE, {"id": campaign["_id"], "input": {"message": "Other"}}, auth(token(org=org))
    )
    assert body["data"]["updateCampaign"]["userErrors"] == [
        {"field": ["id"], "code": "INVALID_TRANSITION"}
    ]


async def test_concurrent_edits_of_different_fields_all_land(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org)
    edits = [
        {"name": "N"},
        {"process": "P"},
        {"contactStatus": "S"},
        {"isAutopilot": True},
        {"message": "Hello {{firstName|you}}"},
    ]
    results = await asyncio.gather(
        *(
            client.patch(f"/api/campaigns/{campaign['_id']}", json=e, headers=auth(token(org=org)))
            for e in edits
        )
    )
    assert [r.status_code for r in results] == [200] * 5
    stored = await Campaign.find_one({"_id": ObjectId(campaign["_id"])})
    assert stored is not None
    assert (stored.name, stored.process, stored.contactStatus, stored.isAutopilot) == (
        "N",
        "P",
        "S",
        True,
    )
    assert stored.message == "Hello {{firstName|you}}" and stored.version == 5


async def test_delete_only_drafts_and_cancelled_and_removes_recipients(
    client: httpx.AsyncClient,
) -> None:
    from models import Recipient

    org = ObjectId()
    scheduled = await create_campaign(client, org, newContacts=phones(3))
    refused = await client.delete(
        f"/api/campaigns/{scheduled['_id']}", headers=auth(token(org=org))
    )
    assert refused.status_code == 409
    assert await Recipient.find({"campaignId": ObjectId(scheduled["_id"])}).count() == 3
    await move(client, org, "cancelCampaign", scheduled["_id"])
    deleted = await client.delete(
        f"/api/campaigns/{scheduled['_id']}", headers=auth(token(org=org))
    )
    assert deleted.json() == {
        "success": True,
        "message": "Campaign deleted",
        "data": {"_id": scheduled["_id"]},
    }
    assert await Recipient.find({"campaignId": ObjectId(scheduled["_id"])}).count() == 0
    assert await Change.find({"subjectId": ObjectId(scheduled["_id"])}).count() == 0
    gone = await client.get(f"/api/campaigns/{scheduled['_id']}", headers=auth(token(org=org)))
    assert gone.status_code == 404


async def test_duplicate_is_a_draft_with_the_same_template_and_recipients(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    source = await create_campaign(
        client, org, newContacts=phones(4), process="p1", contactStatus="Warm"
    )
    await client.post(f"/api/contacts/{source['userIds'][1]}/opt-out", headers=auth(token(org=org)))
    response = await client.post(
        f"/api/campaigns/{source['_id']}/duplicate", headers=auth(token(org=org))
    )
    assert response.status_code == 201
    copy = response.json()["data"]
    assert copy["_id"] != source["_id"]
    assert (copy["name"], copy["status"], copy["message"]) == (
        f"{source['name']} (copy)",
        "draft",
        source["message"],
    )
    assert (copy["process"], copy["contactStatus"]) == ("p1", "Warm")
    assert copy["userIds"] == [source["userIds"][i] for i in (0, 2, 3)]
    assert [d["code"] for d in copy["failedDetails"]] == ["OPTED_OUT"]


async def test_racing_cancel_and_send_never_both_apply_to_one_status(
    client: httpx.AsyncClient,
) -> None:
    """20 rounds of 5 concurrent cancel / send-now requests on one scheduled campaign.

    Of the requests that read the campaign as scheduled exactly one moves it; the others get
    INVALID_TRANSITION naming the status it moved to. A request that only reads the campaign
    after a send landed may still cancel it (cancelling a sending campaign is allowed), so
    every round's history must be a chain: each move starts from the status the previous one
    left, and the stored status is the last move's.
    """
    org = ObjectId()
    single_winner_rounds = 0
    for _ in range(20):
        campaign = await create_campaign(client, org)
        names = ["cancelCampaign", "sendCampaignNow"] * 2 + ["cancelCampaign"]
        results = await asyncio.gather(*(move(client, org, n, campaign["_id"]) for n in names))
        winners = [r for r in results if not r["userErrors"]]
        losers = [r for r in results if r["userErrors"]]
        assert winners
        assert all(
            r["userErrors"][0]["code"] == "INVALID_TRANSITION" and r["campaign"] is None
            for r in losers
        )
        body = await gql(client, HISTORY, {"id": campaign["_id"]}, auth(token(org=org)))
        stored = body["data"]["campaign"]
        moves = stored["history"][1:]
        assert len(moves) == len(winners)
        chain = ["SCHEDULED"] + [m["toStatus"] for m in moves]
        assert [m["fromStatus"] for m in moves] == chain[:-1]
        assert stored["status"] == chain[-1]
        assert chain in (
            ["SCHEDULED", "CANCELLED"],
            ["SCHEDULED", "SENDING"],
            ["SCHEDULED", "SENDING", "CANCELLED"],
        )
        single_winner_rounds += len(winners) == 1
    print(f"rounds with a single winner: {single_winner_rounds}/20")


async def test_many_concurrent_edits_wait_their_turn_instead_of_failing(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    campaign = await create_campaign(client, org)
    answers = await asyncio.gather(
        *(
            client.patch(
                f"/api/campaigns/{campaign['_id']}",
                json={"name": f"N{i}"},
                headers=auth(token(org=org)),
            )
            for i in range(16)
        )
    )
    assert [a.status_code for a in answers] == [200] * 16
    stored = await Campaign.find_one({"_id": ObjectId(campaign["_id"])})
    assert stored is not None and stored.version == 16


async def test_a_change_whose_writer_died_is_finished_with_its_work(
    client: httpx.AsyncClient,
) -> None:
    """A claim recorded, its recipients never inserted, the campaign never written: the next
    change finishes it (recipients included) before doing its own."""
    from datetime import timedelta

    from beanie import PydanticObjectId

    from models import Recipient
    from models.base import utcnow
    from services.campaigns.recipients import recipient_documents

    org = ObjectId()
    campaign = await create_campaign(client, org, newContacts=phones(1), status="draft")
    extra = await create_campaign(client, org, newContacts=phones(1, start=50), status="draft")
    cid = ObjectId(campaign["_id"])
    from services.contacts.records import ContactRef

    ref = ContactRef(ObjectId(extra["userIds"][0]), "P50", "", "+12122000050", None)
    rows = recipient_documents(cid, [ref], [], first_seq=1)
    long_ago = utcnow() - timedelta(minutes=5)
    await Change.get_pymongo_collection().insert_one(
        {
            "organizationId": org,
            "subjectId": cid,
            "version": 1,
            "action": "update",
            "fromStatus": "draft",
            "toStatus": "draft",
            "applied": {"stats": {"total": 2, "sent": 0, "failed": 0, "skipped": 0}, "nextSeq": 2},
            "work": {"insertRecipients": rows},
            "createdAt": long_ago,
            "updatedAt": long_ago,
        }
    )
    renamed = await client.patch(
        f"/api/campaigns/{cid}", json={"name": "After"}, headers=auth(token(org=org))
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["stats"]["total"] == 2
    assert await Recipient.find({"campaignId": PydanticObjectId(cid)}).count() == 2
    detail = await client.get(f"/api/campaigns/{cid}", headers=auth(token(org=org)))
    assert detail.json()["data"]["userIds"] == [campaign["userIds"][0], extra["userIds"][0]]
    stored = await Campaign.find_one({"_id": cid})
    assert stored is not None and (stored.version, stored.name, stored.nextSeq) == (2, "After", 2)
