"""Twilio: sending through its Messages API (played by a local server), and its webhooks.

The local server checks what Twilio checks (basic auth with the account SID and token, the form
fields) and answers as Twilio does, including 429, 5xx, its JSON errors (21211, 21610) and a
request that never gets an answer. The webhooks are signed with the official package's
`RequestValidator`, for the public URL Twilio would have called.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from bson import ObjectId
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from models import Contact, Recipient
from services.sending.dispatcher import Dispatcher
from services.sending.provider import UNSUBSCRIBED, SendError
from services.sending.providers import SimulatedProvider
from services.sending.twilio import TwilioProvider
from tests.index_gate import QueryRecorder, Shape, shapes_of, untargeted_queries
from tests.support import (
    FAST,
    Org,
    client_with,
    gql,
    loopback,
    make_settings,
    served,
    status_path,
    statuses,
    until_done,
)

ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-auth-token-for-tests"
SERVICE = "MG" + "1" * 32
PUBLIC = "https://sms.example.com"
ORG = ObjectId()
"""The organization of a message sent straight through the provider (no campaign's)."""


@dataclass
class FakeTwilio:
    """What the local Twilio was asked, and what it should answer per number (in turn)."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    script: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)

    async def messages(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if (
            request.path_params["sid"] != ACCOUNT
            or request.headers.get("authorization") != expected
        ):
            return self.error(401, 20003, "Authenticate")
        form = dict(parse_qsl((await request.body()).decode()))
        self.requests.append(form)
        if not form.get("To") or not form.get("Body"):
            return self.error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("MessagingServiceSid") or form.get("From")):
            return self.error(400, 21603, "A 'From' phone number is required.")
        if form["To"] in self.hang:
            await asyncio.sleep(5)
        turns = self.script.get(form["To"])
        if turns:
            status, code = turns.pop(0) if len(turns) > 1 else turns[0]
            if status >= 400:
                return self.error(status, code, f"scripted {status}")
        sid = "SM" + uuid.uuid4().hex
        return JSONResponse(
            {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]},
            status_code=201,
        )

    @staticmethod
    def error(status: int, code: int | None, message: str) -> Response:
        body = {"code": code, "message": message, "status": status}
        return JSONResponse(body, status_code=status)

    def asked(self, to: str) -> int:
        return sum(1 for r in self.requests if r.get("To") == to)


@asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    app = Starlette(
        routes=[Route("/2010-04-01/Accounts/{sid}/Messages.json", fake.messages, methods=["POST"])]
    )
    async with served(loopback(app)) as url:
        fake.url = url
        yield fake


def twilio(fake: FakeTwilio, **overrides: Any) -> TwilioProvider:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT,
        "auth_token": TOKEN,
        "public_url": PUBLIC,
        "messaging_service_sid": SERVICE,
        "api_base": fake.url,
        "timeout_s": 2.0,
    }
    values.update(overrides)
    return TwilioProvider(**values)


def number(i: int) -> str:
    return f"+1212{2000000 + i:07d}"  # as `tests.support.phones` numbers them


async def test_a_campaign_goes_out_through_twilio(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with fake_twilio() as fake:
        fake.script = {
            number(1): [(429, 20429), (201, None)],  # rate limited once, then accepted
            number(2): [(400, 21211)],  # not a valid number
            number(3): [(400, 21610)],  # replied STOP to this sender at some point
            number(4): [(503, None)],  # Twilio keeps failing
        }
        org = Org(client)
        campaign_id = await org.create(6, message="Hi {{firstName}}")
        await org.mutate("sendCampaignNow", campaign_id)
        provider = twilio(fake)
        done = await until_done(org, campaign_id, Dispatcher(provider, FAST))
        await provider.close()

    assert done["status"] == "completed"
    assert done["stats"] == {
        "total": 6, "sent": 3, "failed": 2, "skipped": 1, "unknown": 0, "successRate": "60%",
        "replied": 0, "replyRate": "0%", "retried": 0,
    }  # fmt: skip
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    by_contact_phone = {}
    contacts = await org.tenant().raw_find(Contact, {}).to_list()
    phone_of = {c["_id"]: c["phoneNumber"] for c in contacts}
    for row in rows:
        by_contact_phone[phone_of[row["contactId"]]] = row
    # Retried only what may be retried: the 429 once, the 503 up to 4 tries, the rest once.
    assert [fake.asked(number(i)) for i in range(6)] == [1, 2, 1, 1, 4, 1]
    assert by_contact_phone[number(1)]["status"] == "sent"
    assert by_contact_phone[number(1)]["providerMessageId"].startswith("SM")
    assert (by_contact_phone[number(2)]["status"], by_contact_phone[number(2)]["errorCode"]) == (
        "failed",
        "INVALID_NUMBER",
    )
    assert (by_contact_phone[number(3)]["status"], by_contact_phone[number(3)]["errorCode"]) == (
        "skipped",
        "OPTED_OUT",
    )
    assert by_contact_phone[number(4)]["errorCode"] == "TWILIO_503"
    # 21610 opted the contact out here too, so no later campaign tries it.
    unsubscribed = next(c for c in contacts if c["phoneNumber"] == number(3))
    assert unsubscribed["optedOut"] is True and "21610" in unsubscribed["optOutReason"]
    # Every request named the Messaging Service, the rendered body and this recipient's callback.
    first = next(r for r in fake.requests if r["To"] == number(0))
    assert first["MessagingServiceSid"] == SERVICE
    assert first["Body"] == "Hi P0\nReply STOP to opt out"  # a first message: the footer
    rid = by_contact_phone[number(0)]["_id"]
    callback = f"{PUBLIC}/webhooks/twilio/status?recipient={rid}&org={org.id}"
    assert first["StatusCallback"] == callback


async def test_twilio_refusals_are_read_as_twilio_means_them() -> None:
    async with fake_twilio() as fake:
        fake.script = {number(1): [(400, 21610)]}
        fake.hang = {number(2)}
        good = twilio(fake, messaging_service_sid=None, from_number="+15005550006")
        assert (await good.send(number(0), "hello", "k0", organization=ORG)).startswith("SM")
        assert fake.requests[-1]["From"] == "+15005550006"
        with pytest.raises(SendError) as refused:
            await good.send(number(1), "hello", "k1", organization=ORG)
        assert (refused.value.code, refused.value.transient) == (UNSUBSCRIBED, False)

        wrong = twilio(fake, auth_token="not-the-token")
        with pytest.raises(SendError) as unauthorised:
            await wrong.send(number(0), "hello", "k2", organization=ORG)
        assert (unauthorised.value.code, unauthorised.value.transient) == ("TWILIO_20003", False)

        # No answer in time: it may have been sent, and Twilio keeps no keys. Unknown, not retried.
        slow = twilio(fake, timeout_s=0.3)
        with pytest.raises(SendError) as timed_out:
            await slow.send(number(2), "hello", "k3", organization=ORG)
        assert timed_out.value.unknown and not timed_out.value.transient
        for provider in (good, wrong, slow):
            await provider.close()

    # Nothing listens there any more: the request never left, so it may be retried.
    gone = twilio(fake)
    with pytest.raises(SendError) as unreachable:
        await gone.send(number(0), "hello", "k4", organization=ORG)
    assert unreachable.value.transient and unreachable.value.code == "TWILIO_UNREACHABLE"
    await gone.close()


async def test_an_organizations_sender_replaces_the_deployments() -> None:
    async with fake_twilio() as fake:
        provider = twilio(fake, messaging_service_sid="MG" + "0" * 32)
        await provider.send(number(0), "hi", "k0", organization=ORG, sender="phone:+14155550100")
        assert fake.requests[-1]["From"] == "+14155550100"
        assert "MessagingServiceSid" not in fake.requests[-1]
        await provider.send(number(0), "hi", "k1", organization=ORG, sender="service:MG" + "1" * 32)
        assert fake.requests[-1]["MessagingServiceSid"] == "MG" + "1" * 32
        # no sender of its own: the deployment's
        await provider.send(number(0), "hi", "k2", organization=ORG)
        assert fake.requests[-1]["MessagingServiceSid"] == "MG" + "0" * 32
        await provider.close()


def test_the_twilio_provider_refuses_to_start_half_configured(mongo_uri: str) -> None:
    with pytest.raises(ValidationError) as refused:
        make_settings(mongo_uri, dispatch_provider="twilio", twilio_account_sid=ACCOUNT)
    message = str(refused.value)
    assert "TWILIO_AUTH_TOKEN" in message and "TWILIO_PUBLIC_URL" in message
    assert "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER" in message


# -- webhooks ---------------------------------------------------------------------------------

WEBHOOK_SETTINGS = {"twilio_auth_token": TOKEN, "twilio_public_url": PUBLIC}


def signed(path: str, form: dict[str, str], *, base: str = PUBLIC) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(base + path, form)}


async def post(client: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    return await client.post(path, data=form, headers=signed(path, form))


async def sent_campaign(org: Org, count: int, tmp_path: Path) -> list[dict[str, Any]]:
    """A campaign sent through the simulated provider; its recipients, in order."""
    campaign_id = await org.create(count)
    await org.mutate("sendCampaignNow", campaign_id)
    provider = SimulatedProvider(tmp_path / f"{campaign_id}.jsonl")
    await until_done(org, campaign_id, Dispatcher(provider, FAST))
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    return sorted(rows, key=lambda r: r["seq"])


def status_form(row: dict[str, Any], status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": row["providerMessageId"],
        "MessageStatus": status,
        "AccountSid": ACCOUNT,
        "To": "+12122000000",
        **extra,
    }


async def delivery(org: Org, recipient_id: ObjectId) -> str | None:
    rows = await org.tenant().raw_find(Recipient, {"_id": recipient_id}).to_list()
    value = rows[0].get("deliveryStatus")
    return str(value) if value is not None else None


async def test_delivery_reports_only_move_forward(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    rows = await sent_campaign(org, 4, tmp_path)
    path = [status_path(row["_id"], org.id) for row in rows]

    # Late and repeated: delivered, then a late `sent`, then `delivered` again.
    for status in ("delivered", "sent", "delivered"):
        answer = await post(hooked, path[0], status_form(rows[0], status))
        assert answer.status_code == 204, answer.text
    assert await delivery(org, rows[0]["_id"]) == "delivered"

    # In order: queued, then sent.
    for status in ("queued", "sent"):
        await post(hooked, path[1], status_form(rows[1], status))
    assert await delivery(org, rows[1]["_id"]) == "sent"

    # All at once, in any order: the highest wins however the updates race.
    statuses_at_once = ["queued", "sent", "undelivered", "sent", "queued", "sending"]
    answers = await asyncio.gather(
        *(
            post(hooked, path[2], status_form(rows[2], s, ErrorCode="30003"))
            for s in statuses_at_once
        )
    )
    assert {a.status_code for a in answers} == {204}
    assert await delivery(org, rows[2]["_id"]) == "undelivered"

    # A report about another message than the one recorded changes nothing.
    stranger = {**status_form(rows[3], "delivered"), "MessageSid": "SM" + "f" * 32}
    await post(hooked, path[3], stranger)
    assert await delivery(org, rows[3]["_id"]) is None
    # Nor does one for a recipient that does not exist, or a status that is not a report.
    assert (await post(hooked, status_path(ObjectId(), org.id), stranger)).status_code == 204
    assert (await post(hooked, status_path("nonsense", org.id), stranger)).status_code == 204
    await post(hooked, path[3], status_form(rows[3], "canceled"))
    assert await delivery(org, rows[3]["_id"]) is None

    # Callers see it on the recipient, over GraphQL.
    query = (
        f'{{ campaign(id: "{rows[0]["campaignId"]}") '
        "{ recipients(first: 4) { edges { node { deliveryStatus } } } } }"
    )
    body = await gql(hooked, query, None, org.headers)
    seen = [e["node"]["deliveryStatus"] for e in body["data"]["campaign"]["recipients"]["edges"]]
    assert seen == ["DELIVERED", "SENT", "UNDELIVERED", None]


BACKGROUND = ("services/conversations/pending.py", "services/storage/idempotency.py")
"""The app's own loops, which may query while a test looks at what one request sent."""


async def queries_of_one_report(
    mongo_uri: str, tmp_path: Path, *, names_organization: bool, **form: str
) -> dict[Shape, str]:
    """A delivered report about a sent message, at the URL naming its organization or at the
    one from before: applied, and the queries that report (not the app's own loops) sent."""
    recorder = QueryRecorder()
    async with client_with(mongo_uri, [recorder], **WEBHOOK_SETTINGS) as hooked:
        hooked.base_url = httpx.URL("http://internal:8000")
        org = Org(hooked)
        [row] = await sent_campaign(org, 1, tmp_path)
        recorder.shapes.clear()
        path = status_path(row["_id"], org.id if names_organization else None)
        answer = await post(hooked, path, status_form(row, "delivered", **form))
        assert answer.status_code == 204, answer.text
        assert await delivery(org, row["_id"]) == "delivered"
    return {s: o for s, o in recorder.shapes.items() if not o.startswith(BACKGROUND)}


async def test_a_report_naming_its_organization_is_read_within_it(
    mongo_uri: str, tmp_path: Path
) -> None:
    """On a sharded deployment such a report goes to its organization's shard only: every query
    it sends names the organization (the shard key's first field), the recipient's read
    included, none through the exception listed for reports from before the URL named it."""
    report = await queries_of_one_report(
        mongo_uri, tmp_path, names_organization=True, ErrorCode="30003"
    )
    read = shapes_of("recipients", {"organizationId": 1, "_id": 2})[0]
    assert report.get(read, "").startswith("services/sending/delivery.py"), report
    assert untargeted_queries(report, listed={}) == []


async def test_a_report_from_before_the_url_named_the_organization_still_applies(
    mongo_uri: str, tmp_path: Path
) -> None:
    """Messages sent before the change are reported on at the old URL: their recipient is
    looked for in every organization (the listed exception), and the report applies."""
    report = await queries_of_one_report(mongo_uri, tmp_path, names_organization=False)
    assert [str(shape) for shape in report if "organizationId" not in shape.equality] == [
        "recipients: eq=['_id']"
    ]
    assert untargeted_queries(report) == []


async def test_a_report_naming_another_organization_changes_nothing(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The organization in the URL is the one the report is read in: another organization's id
    (signed, so only a mistake could send it) or one that is no id at all finds no recipient,
    is answered 204 (Twilio would retry anything else) and counted."""
    org, other = Org(hooked), Org(hooked)
    [row] = await sent_campaign(org, 1, tmp_path)
    await sent_campaign(other, 1, tmp_path)
    form = status_form(row, "failed", ErrorCode="21610")  # would opt the contact out
    unknown_before = await unknown_recipients(hooked)
    for named in (other.id, ObjectId(), "nonsense", ""):
        answer = await post(hooked, status_path(row["_id"], named), form)
        assert answer.status_code == 204, (named, answer.text)
    assert await delivery(org, row["_id"]) is None
    contacts = await org.tenant().raw_find(Contact, {}).to_list()
    assert [c["optedOut"] for c in contacts] == [False]
    assert await unknown_recipients(hooked) == unknown_before + 4


async def unknown_recipients(client: httpx.AsyncClient) -> float:
    """The reports counted so far as about no known recipient (the counter is the process's)."""
    name = 'campaign_webhook_events_total{kind="status",outcome="unknown_recipient"} '
    lines = (await client.get("/metrics")).text.splitlines()
    return next((float(line[len(name) :]) for line in lines if line.startswith(name)), 0.0)


async def test_webhooks_refuse_a_bad_or_missing_signature(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    rows = await sent_campaign(org, 1, tmp_path)
    path = status_path(rows[0]["_id"], org.id)
    form = status_form(rows[0], "delivered")
    stop = {"From": "+12122000000", "Body": "STOP", "To": "+15005550006"}
    attempts = [
        ("status", path, form, {}),
        ("status", path, form, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}),
        # Signed for the URL the app sees behind the proxy, not the one Twilio called.
        ("status", path, form, signed(path, form, base="http://internal:8000")),
        # Signed, then tampered with.
        ("status", path, {**form, "MessageStatus": "failed"}, signed(path, form)),
        ("inbound", "/webhooks/twilio/inbound", stop, {}),
        ("inbound", "/webhooks/twilio/inbound", stop, {"X-Twilio-Signature": "x"}),
    ]
    for _, where, data, headers in attempts:
        answer = await hooked.post(where, data=data, headers=headers)
        assert answer.status_code == 403, (where, answer.text)
    assert await delivery(org, rows[0]["_id"]) is None
    contact = await org.tenant().raw_find(Contact, {"phoneNumber": "+12122000000"}).to_list()
    assert contact[0]["optedOut"] is False
    metrics = (await hooked.get("/metrics")).text
    assert 'campaign_webhook_events_total{kind="status",outcome="bad_signature"}' in metrics


async def test_webhooks_are_refused_when_twilio_is_not_configured(
    client: httpx.AsyncClient,
) -> None:
    form = {"From": "+12122000000", "Body": "STOP"}
    answer = await client.post(
        "/webhooks/twilio/inbound", data=form, headers=signed("/webhooks/twilio/inbound", form)
    )
    assert answer.status_code == 403


async def test_a_21610_report_opts_the_contact_out(
    hooked: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(hooked)
    rows = await sent_campaign(org, 2, tmp_path)
    path = status_path(rows[1]["_id"], org.id)
    answer = await post(hooked, path, status_form(rows[1], "failed", ErrorCode="21610"))
    assert answer.status_code == 204
    contacts = await org.tenant().raw_find(Contact, {}).to_list()
    opted = Counter(bool(c.get("optedOut")) for c in contacts)
    assert opted == Counter({True: 1, False: 1})
    assert next(c for c in contacts if c["_id"] == rows[1]["contactId"])["optedOut"] is True
    assert Counter(await statuses(org, str(rows[1]["campaignId"]))) == Counter({"sent": 2})
