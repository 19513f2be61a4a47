"""The API as an Apollo web app uses it: `@apollo/client` in Node against the real server.

`e2e/apollo/run.mjs` (its own npm package, locked) drives the real app (`main.create_app`,
lifespan and database included) served by uvicorn on a loopback port, through
`BatchHttpLink` and then the persisted-queries link: campaigns created one per request, paged
with `fetchMore` into one cached list, read back from the normalised cache, changed by
lifecycle mutations, and invisible to a second organization. `e2e/apollo/progress.mjs` follows
a campaign's live progress with `graphql-ws`'s official client while a dispatcher sends it.
`e2e/apollo/inbox.mjs` keeps a rep's inbox open in `@apollo/client` (`messageReceived` over
`GraphQLWsLink`, added to the watched `conversations` with `subscribeToMore`) while a signed
inbound webhook arrives. A missing Node or missing packages is a failure (never a skip), with
the install command in the message.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from bson import ObjectId

from core.config import Settings
from services.conversations import live
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from tests.support import (
    FAST,
    WEBHOOK_SETTINGS,
    Org,
    auth,
    campaign_body,
    make_settings,
    own,
    phones,
    serving,
    text,
    token,
)

ROOT = Path(__file__).resolve().parent.parent
E2E_DIR = ROOT / "e2e" / "apollo"
SCRIPT = E2E_DIR / "run.mjs"
INSTALL_HINT = (
    "npm ci --prefix e2e/apollo --ignore-scripts --no-audit --no-fund"
    "  (or: scripts/ensure-tools.sh --test)"
)
NODE_HINT = "install Node.js 18 or newer (e.g. apt-get install -y nodejs npm)"
RUN_TIMEOUT_S = 120.0


def node() -> str:
    """Path of the `node` binary; fails (never skips) when it is missing."""
    path = shutil.which(os.environ.get("NODE") or "node")
    if not path:
        pytest.fail(f"node not found on PATH; {NODE_HINT}, then: {INSTALL_HINT}")
    return path


def check_installed() -> None:
    """Fails with the install command when the e2e package's modules are not installed."""
    lock = E2E_DIR / "package-lock.json"
    installed = E2E_DIR / "node_modules" / ".package-lock.json"
    clients = [
        E2E_DIR / "node_modules" / name / "package.json"
        for name in ("@apollo/client", "graphql-ws", "ws")
    ]
    if not (installed.is_file() and all(client.is_file() for client in clients)):
        pytest.fail(f"e2e/apollo packages are not installed; run: {INSTALL_HINT}")
    if lock.stat().st_mtime > installed.stat().st_mtime:
        pytest.fail(f"e2e/apollo/package-lock.json changed since install; run: {INSTALL_HINT}")


async def test_apollo_client_batched_and_persisted_against_the_real_server(
    settings: Settings,
) -> None:
    check_installed()
    env = {"TOKEN": token(org=ObjectId()), "OTHER_TOKEN": token(org=ObjectId())}
    # The server runs in this event loop; the subprocess is awaited, never blocked on.
    async with serving(settings) as base:
        stdout = await run_node(SCRIPT, {**env, "GRAPHQL_URL": f"{base}/graphql"})
    print(stdout, end="")  # the passes' summaries, shown with -rP or on failure
    # Both passes reported, and the second organization was checked in each.
    lines = stdout.splitlines()
    for name in ("batch", "persisted"):
        summary = [line for line in lines if line.startswith(f"[{name}] ok:")]
        assert summary, f"no summary of the {name} pass\nstdout:\n{stdout}"
        assert "other organization" in summary[0], summary
    assert "all checks passed" in stdout, stdout


async def run_node(script: Path, env: dict[str, str]) -> str:
    """Runs one e2e script to its end (awaited, so the server in this loop keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        node(),
        str(script),
        cwd=E2E_DIR,
        env={**os.environ, "NODE_ENV": "test", "NO_COLOR": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        pytest.fail(
            f"{script.name} did not finish within {RUN_TIMEOUT_S} s\n"
            f"stdout:\n{out.decode()}\nstderr:\n{err.decode()}"
        )
    assert process.returncode == 0, (
        f"e2e/apollo/{script.name} exited with {process.returncode} after "
        f"{time.monotonic() - started:.1f} s\nstdout:\n{out.decode()}\nstderr:\n{err.decode()}"
    )
    return out.decode()


async def test_graphql_ws_client_follows_a_campaign_to_the_end(
    settings: Settings, tmp_path: Path
) -> None:
    check_installed()
    org = ObjectId()
    mine = token(org=org)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        body = campaign_body(newContacts=phones(250), scheduleDate=None)
        created = await http.post("/api/campaigns", json=body, headers=auth(mine))
        campaign_id = created.json()["data"]["_id"]
        send_now = (
            f'mutation {{ sendCampaignNow(id: "{campaign_id}") {{ userErrors {{ code }} }} }}'
        )
        answer = await http.post("/graphql", json={"query": send_now}, headers=auth(mine))
        assert answer.json()["data"]["sendCampaignNow"]["userErrors"] == []
        env = {
            "GRAPHQL_WS_URL": base.replace("http://", "ws://") + "/graphql",
            "CAMPAIGN_ID": campaign_id,
            "TOKEN": mine,
            "OTHER_TOKEN": token(org=ObjectId()),
            "FORGED_TOKEN": token(secret="not-the-server-secret-" * 2, org=org),
        }
        watching = asyncio.create_task(run_node(E2E_DIR / "progress.mjs", env))
        await asyncio.sleep(1.5)  # the client subscribed and saw the campaign waiting
        provider = SimulatedProvider(tmp_path / "l.jsonl", latency_s=0.1)
        stop = asyncio.Event()
        sending = asyncio.create_task(Dispatcher(provider, FAST).run(stop))
        try:
            out = await watching
        finally:
            stop.set()
            await sending
    result = json.loads(out.strip().splitlines()[-1])
    values = result["values"]
    assert result["completed"] is True, result
    assert values[0]["status"] == "SENDING" and values[0]["stats"]["sent"] == 0, values[0]
    assert values[-1] == {
        "status": "COMPLETED",
        "stats": {
            "total": 250,
            "sent": 250,
            "failed": 0,
            "skipped": 0,
            "unknown": 0,
            "successRate": "100%",
        },
        "nextSendAt": None,
    }
    sent = [value["stats"]["sent"] for value in values]
    assert sent == sorted(sent) and len(set(sent)) >= 3, sent  # progress, never backwards
    # Another organization's id: one result carrying NOT_FOUND, and the subscription ends.
    [refused] = result["other"]["values"]
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["NOT_FOUND"]
    assert result["other"]["completed"] is True
    assert result["forged"]["closed"] == 4403, result["forged"]


async def test_apollo_inbox_receives_a_reply_into_its_cache(mongo_uri: str) -> None:
    check_installed()
    settings = make_settings(mongo_uri, **WEBHOOK_SETTINGS)
    number, alice, body = "+14155550100", "+12122000000", "yes, call me"
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        org = Org(http)
        await own(http, org, number)
        env = {
            "GRAPHQL_URL": f"{base}/graphql",
            "GRAPHQL_WS_URL": base.replace("http://", "ws://") + "/graphql",
            "TOKEN": token(org=org.id),
            "PHONE": alice,
            "BODY": body,
        }
        watching = asyncio.create_task(run_node(E2E_DIR / "inbox.mjs", env))
        # The webhook comes once the client's subscription is listening (this process serves it).
        while not live.WATCHER.listeners.get(org.id):
            assert not watching.done(), await watching
            await asyncio.sleep(0.05)
        answer = await text(http, frm=alice, to=number, body=body)
        assert answer.status_code == 200, answer.text
        out = await watching
    result = json.loads(out.strip().splitlines()[-1])
    received = result["received"]
    assert received["body"] == body and received["from"] == alice, result
    conversation = {"phone": alice, "messageId": received["id"], "body": body, "unreadCount": 1}
    assert result["cached"] == [conversation], result  # the cache holds the conversation
    assert result["server"] == result["cached"], result  # as the server has it
    assert result["cachedMessage"] == {"id": received["id"], "body": body}, result
