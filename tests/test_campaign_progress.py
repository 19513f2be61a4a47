"""`campaignProgress` over graphql-transport-ws, with a real websocket client against uvicorn."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.config import Settings
from services.campaigns import progress
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from tests.support import FAST, auth, campaign_body, phones, serving, token

PROGRESS = """subscription($id: ID!) {
  campaignProgress(id: $id) { status stats { total sent failed successRate } nextSendAt }
}"""


async def open_socket(base: str, tok: str) -> ClientConnection:
    socket = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tok}"}})
    )
    return socket


async def subscribe(base: str, tok: str, campaign_id: str) -> ClientConnection:
    """Opens a socket, signs in and subscribes to the campaign's progress."""
    socket = await open_socket(base, tok)
    assert (await receive(socket))["type"] == "connection_ack"
    payload = {"query": PROGRESS, "variables": {"id": campaign_id}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return socket


async def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 30))
    return message


async def test_progress_is_pushed_until_the_campaign_completes(
    settings: Settings, tmp_path: Path
) -> None:
    org = ObjectId()
    tok = token(org=org)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        body = campaign_body(newContacts=phones(250), scheduleDate=None)
        created = await http.post("/api/campaigns", json=body, headers=auth(tok))
        campaign_id = created.json()["data"]["_id"]
        socket = await subscribe(base, tok, campaign_id)
        first = await receive(socket)
        assert first["type"] == "next", first
        assert first["payload"]["data"]["campaignProgress"] == {
            "status": "DRAFT",
            "stats": {"total": 250, "sent": 0, "failed": 0, "successRate": "0%"},
            "nextSendAt": None,
        }
        send_now = (
            f'mutation {{ sendCampaignNow(id: "{campaign_id}") {{ userErrors {{ code }} }} }}'
        )
        await http.post("/graphql", json={"query": send_now}, headers=auth(tok))
        dispatcher = Dispatcher(SimulatedProvider(tmp_path / "l.jsonl", latency_s=0.05), FAST)
        stop = asyncio.Event()
        sending = asyncio.create_task(dispatcher.run(stop))
        values = []
        try:
            while True:
                message = await receive(socket)
                if message["type"] == "complete":
                    break
                assert message["type"] == "next", message
                values.append(message["payload"]["data"]["campaignProgress"])
        finally:
            stop.set()
            await sending
        statuses = [v["status"] for v in values]
        assert statuses[0] == "SENDING" and statuses[-1] == "COMPLETED", statuses
        sent = [v["stats"]["sent"] for v in values]
        assert sent == sorted(sent) and sent[-1] == 250, sent
        assert values[-1]["stats"]["successRate"] == "100%"
        await socket.close()


async def test_subscribers_of_one_campaign_share_one_read_per_pass(
    settings: Settings, tmp_path: Path
) -> None:
    org = ObjectId()
    tok = token(org=org)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        body = campaign_body(newContacts=phones(120), scheduleDate=None)
        created = await http.post("/api/campaigns", json=body, headers=auth(tok))
        campaign_id = created.json()["data"]["_id"]
        sockets = [await subscribe(base, tok, campaign_id) for _ in range(12)]
        for socket in sockets:
            assert (await receive(socket))["type"] == "next"
        followers = progress.WATCHER.followers[(org, ObjectId(campaign_id))]
        assert len(followers) == 12
        passes, reads = progress.WATCHER.passes, progress.WATCHER.reads
        send_now = (
            f'mutation {{ sendCampaignNow(id: "{campaign_id}") {{ userErrors {{ code }} }} }}'
        )
        await http.post("/graphql", json={"query": send_now}, headers=auth(tok))
        dispatcher = Dispatcher(SimulatedProvider(tmp_path / "l.jsonl", latency_s=0.05), FAST)
        stop = asyncio.Event()
        sending = asyncio.create_task(dispatcher.run(stop))
        last: list[dict[str, Any]] = []
        try:
            for socket in sockets:
                value: dict[str, Any] = {}
                while (message := await receive(socket))["type"] != "complete":
                    value = message["payload"]["data"]["campaignProgress"]
                last.append(value)
        finally:
            stop.set()
            await sending
        assert all(v["status"] == "COMPLETED" and v["stats"]["sent"] == 120 for v in last)
        # Twelve subscribers, one campaign: one read per pass, as for one subscriber.
        made = progress.WATCHER.passes - passes
        assert made > 0 and progress.WATCHER.reads - reads == made
        for socket in sockets:
            await socket.close()


async def test_another_organizations_campaign_ends_with_not_found(settings: Settings) -> None:
    org = ObjectId()
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        created = await http.post(
            "/api/campaigns", json=campaign_body(), headers=auth(token(org=org))
        )
        campaign_id = created.json()["data"]["_id"]
        socket = await subscribe(base, token(), campaign_id)  # another organization's token
        message = await receive(socket)
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND", message
        await socket.close()


async def test_a_bad_token_in_connection_init_closes_the_socket(settings: Settings) -> None:
    async with serving(settings) as base:
        socket = await open_socket(base, "not-a-token")
        try:
            await receive(socket)
            raise AssertionError("the socket stayed open")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403
