"""Simulated replies (development): a share of what the simulated provider accepts is answered
through the inbound webhook's own service, so replies are routed, attributed and counted as
real ones are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from bson import ObjectId
from pydantic import ValidationError

from core.config import Settings
from models import Message, Reply
from services.conversations.simulated import ANSWERS, Replier, provider_from
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from tests.support import FAST, Org, make_settings, own, until_done

NUMBER = "+14155550100"


async def test_every_message_answered_at_rate_one_lands_in_its_thread_and_counts(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org, bystander = Org(client), Org(client)
    await own(client, org, NUMBER)
    await own(client, bystander, "+14155550199")
    answering = settings.model_copy(
        update={"simulated_reply_rate": 1.0, "simulated_reply_delay_s": 0.0}
    )
    replier = Replier(answering, seed=7)
    accepted: list[tuple[str, str, str | None]] = []
    provider = SimulatedProvider(
        tmp_path / "l.jsonl", on_accepted=lambda *sent: accepted.append(sent)
    )
    campaign_id = await org.create(20)
    await org.mutate("sendCampaignNow", campaign_id)
    await until_done(org, campaign_id, Dispatcher(provider, FAST))
    # The contacts answer once the sends are recorded (a real reply takes seconds at least).
    for sent in accepted:
        replier.on_accepted(*sent)
    while replier.tasks:
        await asyncio.gather(*list(replier.tasks))
    inbound = await org.tenant().raw_find(Message, {"direction": "inbound"}).to_list()
    assert len(inbound) == 20
    assert {m["body"] for m in inbound} <= {text for text, _ in ANSWERS}
    assert all(m["sender"] == f"phone:{NUMBER}" for m in inbound)
    # Replies that are not keywords are attributed to the campaign, once per contact.
    answers = [m for m in inbound if m.get("keyword") is None]
    replies = await org.tenant().raw_find(Reply, {"campaignId": ObjectId(campaign_id)}).to_list()
    assert len(replies) == len(answers) > 0
    assert await bystander.tenant().raw_find(Message, {}).to_list() == []


def test_replies_are_for_development_only(mongo_uri: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SIMULATED_REPLY_RATE"):
        make_settings(mongo_uri, environment="production", simulated_reply_rate=0.2)
    wired = provider_from(
        make_settings(
            mongo_uri,
            dispatch_provider="simulated",
            simulated_ledger=str(tmp_path / "l.jsonl"),
            simulated_reply_rate=0.2,
        )
    )
    assert isinstance(wired, SimulatedProvider) and wired.on_accepted is not None
    plain = provider_from(
        make_settings(
            mongo_uri, dispatch_provider="simulated", simulated_ledger=str(tmp_path / "m.jsonl")
        )
    )
    assert isinstance(plain, SimulatedProvider) and plain.on_accepted is None
