"""The opt-out footer's marker follows the message that carries it
(services/organizations/footer.py): a first message that definitely did not go out (refused
by the provider, permanently or not) gives the marker back, so the contact's next message
carries the footer; one whose outcome is `unknown` keeps it; a holder resending a crashed
holder's message keeps it too. A rep's message, a campaign's first message and a follow-up
step, each on the real database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId

from core.auth import Principal
from core.config import Settings
from models import Contact
from services.conversations import outbound
from services.organizations import footer as footers
from services.sending.dispatcher import Dispatcher
from services.sending.provider import SendError
from services.sending.providers import SimulatedProvider, read_ledger
from services.storage.tenancy import Tenant
from tests.support import ANY_HOUR, FAST, Clock, Org, admin, gql, make_contact, phones, until_done

FOOTER = "Reply STOP to opt out"
SETTINGS = """
mutation ($input: UpdateOrganizationSettingsInput!) {
  updateOrganizationSettings(input: $input) { userErrors { field code } }
}"""


class Unsure(SimulatedProvider):
    """A provider whose every request times out after it may have arrived: outcome unknown."""

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        raise SendError("TIMEOUT", "read timed out", transient=True, unknown=True)


async def rep_sends(
    org: Org, settings: Settings, contact_id: object, body: str, provider: SimulatedProvider
) -> tuple[str, str]:
    """A rep's message through the service, with this provider; (status, body as stored)."""
    tenant = Tenant(Principal(org.user, org.id, "Alex Rep", ("rep",)))
    message = await outbound.send_message(
        tenant,
        outbound.Outgoing(str(contact_id), body, f"k-{ObjectId()}"),
        provider=provider,
        settings=settings,
        defaults=ANY_HOUR,
    )
    return message.status, message.body


async def contact_ids(org: Org, numbers: list[str]) -> list[ObjectId]:
    rows = await org.tenant().raw_find(Contact, {}, {"phoneNumber": 1}).to_list()
    by_phone = {row["phoneNumber"]: row["_id"] for row in rows}
    return [by_phone[number] for number in numbers]


async def test_a_reps_first_message_refused_by_the_provider_gives_the_footer_to_the_next(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    refused, flaky, unsure = "+14155550181", "+14155550182", "+14155550183"
    ids = {n: (await make_contact(org.id, n)).id for n in (refused, flaky, unsure)}
    works = SimulatedProvider(tmp_path / "ok.jsonl")
    refusing = SimulatedProvider(
        tmp_path / "refusing.jsonl", fail={refused: "permanent:30007", flaky: "transient:503:9"}
    )

    assert await rep_sends(org, settings, ids[refused], "Hi", refusing) == (
        "failed",
        f"Hi\n{FOOTER}",
    )
    assert await rep_sends(org, settings, ids[refused], "Hi again", works) == (
        "sent",
        f"Hi again\n{FOOTER}",
    )
    assert await rep_sends(org, settings, ids[refused], "And again", works) == ("sent", "And again")

    # a transient refusal (the request never got through) did not go out either
    assert (await rep_sends(org, settings, ids[flaky], "Hi", refusing))[0] == "failed"
    assert await rep_sends(org, settings, ids[flaky], "Hi", works) == ("sent", f"Hi\n{FOOTER}")
    assert await rep_sends(org, settings, ids[flaky], "Bye", works) == ("sent", "Bye")

    # unknown: it may have gone with the footer, so the marker stays
    status, body = await rep_sends(org, settings, ids[unsure], "Hi", Unsure(tmp_path / "u.jsonl"))
    assert (status, body) == ("unknown", f"Hi\n{FOOTER}")
    assert await rep_sends(org, settings, ids[unsure], "Hi", works) == ("sent", "Hi")
    assert [e["body"] for e in read_ledger(tmp_path / "ok.jsonl")] == [
        f"Hi again\n{FOOTER}",
        "And again",
        f"Hi\n{FOOTER}",
        "Bye",
        "Hi",
    ]


async def test_a_campaigns_first_message_refused_gives_the_footer_to_the_next(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    numbers = [p["phoneNumber"] for p in phones(3)]
    ledger = tmp_path / "campaign.jsonl"
    provider = SimulatedProvider(ledger, fail={numbers[0]: "permanent:30007"})
    campaign_id = await org.create(3)
    await org.mutate("sendCampaignNow", campaign_id)
    done = await until_done(org, campaign_id, Dispatcher(provider, FAST))
    assert (done["stats"]["sent"], done["stats"]["failed"]) == (2, 1)
    assert sorted(e["body"].endswith(FOOTER) for e in read_ledger(ledger)) == [True, True]

    works = SimulatedProvider(tmp_path / "ok.jsonl")
    bodies = [
        (await rep_sends(org, settings, contact_id, "Hi", works))[1]
        for contact_id in await contact_ids(org, numbers)
    ]
    assert bodies == [f"Hi\n{FOOTER}", "Hi", "Hi"]


async def test_a_follow_up_that_is_the_first_message_and_is_refused_gives_the_footer_back(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    numbers = [p["phoneNumber"] for p in phones(2)]
    off = await gql(client, SETTINGS, {"input": {"optOutFooter": ""}}, admin(org))
    assert off["data"]["updateOrganizationSettings"]["userErrors"] == []
    cadence = [{"delayMinutes": 60, "message": "Still there?"}]
    campaign_id = await org.create(2, followUps=cadence, isAutopilot=True)
    ledger = tmp_path / "steps.jsonl"
    provider = SimulatedProvider(ledger)
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(provider, replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()  # the first messages, without the footer: no markers
    assert [e["body"].endswith(FOOTER) for e in read_ledger(ledger)] == [False, False]
    on = await gql(client, SETTINGS, {"input": {"optOutFooter": FOOTER}}, admin(org))
    assert on["data"]["updateOrganizationSettings"]["userErrors"] == []
    provider.fail[numbers[0]] = "permanent:30007"
    clock.advance(timedelta(minutes=61))
    await until_done(org, campaign_id, dispatcher)
    steps = [e for e in read_ledger(ledger) if e["key"].endswith(":1")]
    assert [(e["to"], e["body"]) for e in steps] == [(numbers[1], f"Still there?\n{FOOTER}")]

    works = SimulatedProvider(tmp_path / "ok.jsonl")
    bodies = [
        (await rep_sends(org, settings, contact_id, "Hi", works))[1]
        for contact_id in await contact_ids(org, numbers)
    ]
    assert bodies == [f"Hi\n{FOOTER}", "Hi"]


async def test_a_holder_resending_a_crashed_holders_message_keeps_its_footer(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    tenant = org.tenant()
    contact, other = ObjectId(), ObjectId()
    assert await footers.claim_first(tenant, {contact: "r1", other: "r2"}) == {contact, other}
    # the same messages again: theirs only when a takeover resends them (same keys)
    assert await footers.claim_first(tenant, {contact: "r1", other: "x"}) == set()
    assert await footers.claim_first(tenant, {contact: "r1", other: "x"}, resumed=True) == {contact}
    # only the message a marker names gives it back
    await footers.give_back(tenant, {contact: "x", other: "r2"})
    assert await footers.claim_first(tenant, {contact: "y", other: "y"}) == {other}
