"""`messageReceived` over graphql-transport-ws against a real uvicorn: a signed inbound
webhook reaches every subscriber of its organization (or of the rep it belongs to) through
one watcher per process, and no subscriber of another organization."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect

from core.config import Settings
from services.conversations import live
from tests.support import (
    WEBHOOK_SETTINGS,
    Org,
    make_contact,
    make_settings,
    own,
    serving,
    text,
    token,
)

RECEIVED = """subscription ($rep: ID) {
  messageReceived(assignedTo: $rep) { body direction from contact { phoneNumber } }
}"""
NUMBER = "+14155550100"
ALICE, BOB = "+12122000000", "+12122000001"


async def subscribe(base: str, tok: str, rep: str | None = None) -> ClientConnection:
    socket = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tok}"}})
    )
    assert (await receive(socket))["type"] == "connection_ack"
    payload = {"query": RECEIVED, "variables": {"rep": rep}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return socket


async def receive(socket: ClientConnection, within: float = 30) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), within))
    return message


async def nothing_arrives(socket: ClientConnection, seconds: float) -> bool:
    try:
        await asyncio.wait_for(socket.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def test_new_messages_reach_every_subscriber_of_the_organization_only(
    mongo_uri: str,
) -> None:
    settings: Settings = make_settings(mongo_uri, **WEBHOOK_SETTINGS)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        org, other = Org(http), Org(http)
        await own(http, org, NUMBER)
        rep = ObjectId()
        await make_contact(org.id, ALICE, assignedTo=rep)
        everyone = [await subscribe(base, token(org=org.id)) for _ in range(20)]
        mine = await subscribe(base, token(org=org.id), str(rep))
        bystander = await subscribe(base, token(org=other.id))
        # One watcher serves them all.
        assert len(live.WATCHER.listeners[ObjectId(org.id)]) == 21
        assert live.WATCHER.task is not None and not live.WATCHER.task.done()

        await text(http, frm=ALICE, to=NUMBER, body="yes, call me")
        expected = {
            "body": "yes, call me",
            "direction": "INBOUND",
            "from": ALICE,
            "contact": {"phoneNumber": ALICE},
        }
        for socket in [*everyone, mine]:
            message = await receive(socket, 10)
            assert message["type"] == "next", message
            assert message["payload"]["data"]["messageReceived"] == expected
        # BOB's conversation is not the rep's: only the organization-wide subscribers hear it.
        await text(http, frm=BOB, to=NUMBER, body="who is this?")
        for socket in everyone:
            message = await receive(socket, 10)
            assert message["payload"]["data"]["messageReceived"]["from"] == BOB
        assert await nothing_arrives(mine, 1.5)
        assert await nothing_arrives(bystander, 0.5)
        for socket in [*everyone, mine, bystander]:
            await socket.close()
