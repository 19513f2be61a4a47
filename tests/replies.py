"""Helpers for tests of senders, inbound messages and conversations: signed Twilio webhooks,
an organization's senders set through the API, and a campaign sent through the simulated
provider."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from models import Contact, Message, Recipient
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from tests.factories import auth, gql, token
from tests.sending import FAST, Org, until_done

TWILIO_TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://sms.example.com"
WEBHOOK_SETTINGS: dict[str, object] = {
    "twilio_auth_token": TWILIO_TOKEN,
    "twilio_public_url": PUBLIC,
}
INBOUND = "/webhooks/twilio/inbound"
_sids = itertools.count()

SETTINGS_FIELDS = (
    "{ helpText attributionWindowDays inboundContactStatus "
    "senders { phoneNumber messagingServiceSid } }"
)
UPDATE_SETTINGS = f"""
mutation ($input: UpdateOrganizationSettingsInput!) {{
  updateOrganizationSettings(input: $input) {{
    settings {SETTINGS_FIELDS}
    userErrors {{ field code message }}
  }}
}}"""


def service_sid(i: int) -> str:
    return f"MG{i:032x}"


def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}{next(_sids) % 10}"[:34]


def signed(path: str, form: dict[str, str]) -> dict[str, str]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, form)
    return {"X-Twilio-Signature": signature}


async def text(
    client: httpx.AsyncClient,
    *,
    frm: str,
    to: str,
    body: str,
    sid: str | None = None,
    **extra: str,
) -> httpx.Response:
    """A contact texts `to`: Twilio's signed inbound webhook."""
    form = {
        "MessageSid": sid or new_sid(),
        "AccountSid": "AC" + "0" * 32,
        "From": frm,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
    answer = await client.post(INBOUND, data=form, headers=signed(INBOUND, form))
    assert answer.status_code == 200, answer.text
    return answer


def admin(org: Org) -> dict[str, str]:
    return auth(token(org=org.id, user=org.user, roles=["admin"]))


async def update_settings(
    client: httpx.AsyncClient, org: Org, values: dict[str, Any], *, as_admin: bool = True
) -> dict[str, Any]:
    headers = admin(org) if as_admin else org.headers
    body = await gql(client, UPDATE_SETTINGS, {"input": values}, headers)
    return body


async def own(client: httpx.AsyncClient, org: Org, *senders: str, **values: Any) -> None:
    """Gives `org` these senders (numbers, or `MG...` services) and other settings."""
    entries = [
        {"messagingServiceSid": s} if s.startswith("MG") else {"phoneNumber": s} for s in senders
    ]
    body = await update_settings(client, org, {"senders": entries, **values})
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == [], body


async def messages(org: Org) -> list[dict[str, Any]]:
    rows = await org.tenant().raw_find(Message, {}).to_list()
    return sorted(rows, key=lambda row: (row["createdAt"], row["_id"]))


async def contact(org: Org, phone: str) -> dict[str, Any] | None:
    rows = await org.tenant().raw_find(Contact, {"phoneNumber": phone}).to_list()
    return rows[0] if rows else None


async def send(org: Org, count: int, tmp_path: Path, **overrides: Any) -> str:
    """Creates a campaign of `count` contacts (`tests.factories.phones`) and sends it."""
    campaign_id = await org.create(count, **overrides)
    await org.mutate("sendCampaignNow", campaign_id)
    provider = SimulatedProvider(tmp_path / f"{campaign_id}.jsonl")
    await until_done(org, campaign_id, Dispatcher(provider, FAST))
    return campaign_id


async def recipient(org: Org, campaign_id: str, phone: str) -> dict[str, Any]:
    found = await contact(org, phone)
    assert found is not None
    rows = (
        await org.tenant()
        .raw_find(Recipient, {"campaignId": ObjectId(campaign_id), "contactId": found["_id"]})
        .to_list()
    )
    return rows[0]
