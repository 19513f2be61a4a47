"""Replies: Twilio's inbound webhook under a burst, and the reps' first inbox page, each against
the raw database floor measured in the same run.

Webhooks: one organization owns a number and sends a campaign to `--recipients` contacts (the
simulated provider); then each contact answers once, through the signed webhook, in the app
(ASGI in process, no socket): `--single` of them one at a time, then 1,000 at 20 concurrent
and 1,000 at 50 concurrent (with 50 of the last burst's messages posted twice, as Twilio's
retries are). Each webhook is timed to its answer; an ordinary reply is applied right after it
by the app's workers (`services.conversations.pending`), and the rate is replies applied per
second, until the last one is. The floor, at the same concurrency: a reply's round trips in raw
PyMongo (the sender and contact lookups, the message, reply and activity inserts, the
recipient update, and the conversation summary's refresh: the thread's five reads, the write,
the five reads again), and a single insert. Checked after: every message stored once, every
reply attributed, and the campaign's `replied` equal to the distinct repliers.

Inbox: another organization is loaded with `--beside` conversations (default 100,000), then an
organization of each size (`--sizes`, default 20,000 and 100,000), each conversation a contact
that replied once to a sent campaign, everything inserted in bulk through PyMongo (summaries
made by the app's own `summarize`); `conversations(first: 20)` is timed for it against its
floor: the equality read of the newest summaries' bucket and the page's 20 contacts by id.

Open inboxes (`--subscribers`, default 200): the app in a uvicorn process of its own, a
bystander organization's `contact(id)` timed idle, then while that many `messageReceived`
subscribers of another organization are open and a webhook reaches them every second, then idle
again; the issue asks for the loaded p95 within 1.5x of the idle one.

Timing is reported, never failed on; the run exits 1 only if an answer was wrong.

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.replies [--sizes 20000 100000] [--beside 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect

from bench.create_campaign import bench_settings, server_description, serving
from bench.verdict import exit_code
from core.config import Settings
from core.db import create_client
from main import create_app
from models import (
    Activity,
    Campaign,
    Contact,
    ConversationEvent,
    ConversationSummary,
    Message,
    PendingInbound,
    Recipient,
    Reply,
    Sender,
    StepSend,
)
from models.base import utcnow
from models.conversation import ACTIVITY_PAGE, SUMMARY_BUCKET
from services.conversations.summaries import summarize, summary_id
from services.conversations.threads import ThreadMessage
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from services.storage.positions import CONTACTS_PER_PAGE
from tests.support import (
    FAST,
    PUBLIC,
    TEST_JWT_SECRET,
    TWILIO_TOKEN,
    WEBHOOK_SETTINGS,
    Org,
    gql,
    inbound_form,
    new_sid,
    own,
    phones,
    post_inbound,
    until_done,
)

NUMBER = "+14155550100"
DUPLICATES = 50
INBOX_QUERY = """{ conversations(first: 20) { edges { node {
  contact { id phoneNumber } lastMessage { id body direction createdAt } unreadCount owner { id }
} } pageInfo { hasNextPage endCursor } } }"""
INBOX_SAMPLES = 100
TARGET_WEBHOOK_P95_MS = 100.0
TARGET_INBOX_P95_MS = 50.0


def ms(values: list[float]) -> tuple[float, float]:
    """p50 and p95 of seconds, in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return statistics.median(ordered) * 1000, p95 * 1000


async def timed_all(
    jobs: list[Callable[[], Awaitable[object]]], concurrency: int
) -> tuple[list[float], float]:
    """Runs the jobs `concurrency` at a time; each one's latency, and the wall time."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            started = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return latencies, time.perf_counter() - started


class Floor:
    """The webhook's round trips in raw PyMongo, written under an organization of their own."""

    def __init__(self, org: ObjectId, contacts_org: ObjectId) -> None:
        self.org = org
        self.contacts_org = contacts_org
        self.n = 0

    async def webhook(self, phone: str, contact_id: ObjectId) -> None:
        messages = Message.get_pymongo_collection()
        await Sender.get_pymongo_collection().find_one({"_id": f"phone:{NUMBER}"})
        await Contact.get_pymongo_collection().find_one(
            {"organizationId": self.contacts_org, "phoneNumber": phone}
        )
        message_id = ObjectId()
        now = utcnow()
        await messages.insert_one(
            {
                "_id": message_id,
                "organizationId": self.org,
                "contactId": contact_id,
                "direction": "inbound",
                "body": "yes, call me",
                "providerMessageId": new_sid(),
                "status": "received",
                "campaignId": None,
                "createdAt": now,
            }
        )
        await (
            Recipient.get_pymongo_collection()
            .find({"organizationId": self.contacts_org, "contactId": contact_id})
            .to_list()
        )
        reply = f"floor:{uuid.uuid4().hex}"
        await Reply.get_pymongo_collection().insert_one({"_id": reply, "organizationId": self.org})
        await Reply.get_pymongo_collection().update_one(
            {"_id": reply, "organizationId": self.org}, {"$set": {"repliedAt": now}}
        )
        self.n += 1
        await Activity.get_pymongo_collection().insert_one(
            {
                "_id": f"{self.org}:{self.n}",
                "organizationId": self.org,
                "n": self.n,
                "contactId": contact_id,
            }
        )
        # The conversation's summary: the thread's records read, the summary written, the
        # records read again to check it (`summaries.refresh`).
        await self.thread(contact_id)
        await ConversationSummary.get_pymongo_collection().update_one(
            {"_id": f"{self.org}:{contact_id}", "organizationId": self.org},
            {"$set": {"n": self.n, "bucket": self.n // SUMMARY_BUCKET, "unreadCount": 1}},
            upsert=True,
        )
        await self.thread(contact_id)

    async def thread(self, contact_id: ObjectId) -> None:
        mine = {"organizationId": self.org, "contactId": contact_id}
        theirs = {"organizationId": self.contacts_org, "contactId": contact_id}
        await asyncio.gather(
            Message.get_pymongo_collection().find(mine).to_list(),
            Recipient.get_pymongo_collection().find(theirs).to_list(),
            StepSend.get_pymongo_collection().find(theirs).to_list(),
            ConversationEvent.get_pymongo_collection().find(mine).to_list(),
            Activity.get_pymongo_collection().find(mine, {"n": 1}).to_list(),
        )

    async def insert(self) -> None:
        await Reply.get_pymongo_collection().insert_one(
            {"_id": f"floor:{uuid.uuid4().hex}", "organizationId": self.org}
        )


async def contact_ids(org: Org) -> dict[str, ObjectId]:
    rows = await org.tenant().raw_find(Contact, {}, {"phoneNumber": 1}).to_list()
    return {row["phoneNumber"]: row["_id"] for row in rows}


async def webhooks(
    http: httpx.AsyncClient, args: argparse.Namespace, problems: list[str], tmp: Path
) -> None:
    org = Org(http)
    await own(http, org, NUMBER)
    total = args.single + 2 * args.burst
    campaign_id = await org.create(total)
    await org.mutate("sendCampaignNow", campaign_id)
    started = time.perf_counter()
    await until_done(
        org, campaign_id, Dispatcher(SimulatedProvider(tmp / "l.jsonl"), FAST), ticks=10_000
    )
    print(f"campaign of {total:,} sent in {time.perf_counter() - started:.1f} s", flush=True)
    people = [p["phoneNumber"] for p in phones(total)]
    ids = await contact_ids(org)
    floor = Floor(ObjectId(), org.id)
    sids = [new_sid() for _ in people]

    def answer(i: int) -> Callable[[], Awaitable[object]]:
        return lambda: post_reply(http, people[i], sids[i])

    def raw(i: int) -> Callable[[], Awaitable[object]]:
        return lambda: floor.webhook(people[i], ids[people[i]])

    print(
        f"\nwebhooks{'':21}answer p50 ms   p95 ms  applied/s | floor p50   p95     /s | ratio (/s)"
    )
    phases = [
        ("one at a time", range(args.single), 1),
        (f"{args.burst:,} at 20 concurrent", range(args.single, args.single + args.burst), 20),
        (f"{args.burst:,} at 50 concurrent", range(args.single + args.burst, total), 50),
    ]
    for name, span, concurrency in phases:
        jobs = [answer(i) for i in span]
        if concurrency == 50:
            jobs += [answer(i) for i in span[:DUPLICATES]]  # Twilio's retries
        floor_lat, floor_wall = await timed_all([raw(i) for i in span], concurrency)
        started = time.perf_counter()
        app_lat, _ = await timed_all(jobs, concurrency)
        await drained()
        app_wall = time.perf_counter() - started
        insert_lat, _ = await timed_all([floor.insert for _ in span], concurrency)
        (a50, a95), (f50, f95) = ms(app_lat), ms(floor_lat)
        rate, floor_rate = len(span) / app_wall, len(span) / floor_wall
        print(
            f"  {name:<32}{a50:7.1f} {a95:8.1f} {rate:10.0f} | {f50:9.1f} {f95:5.1f} "
            f"{floor_rate:6.0f} | {rate / floor_rate:.2f}x   (one insert: p50 "
            f"{ms(insert_lat)[0]:.1f} ms; webhook p95 target {TARGET_WEBHOOK_P95_MS:.0f} ms)",
            flush=True,
        )
    tenant = org.tenant()
    stored = await tenant.raw_find(Message, {"direction": "inbound"}, {"_id": 1}).to_list()
    if len(stored) != total:
        problems.append(f"{len(stored)} inbound messages stored for {total} distinct ones")
    replies = await tenant.count(Reply, {"campaignId": ObjectId(campaign_id)})
    if replies != total:
        problems.append(f"{replies} replies attributed for {total} repliers")
    query = "query ($id: ID!) { campaign(id: $id) { stats { replied replyRate } } }"
    body = await gql(http, query, {"id": campaign_id}, org.headers)
    replied = body["data"]["campaign"]["stats"]["replied"]
    if replied != total:
        problems.append(f"campaign says replied {replied}, expected {total}")
    print(f"  stored {len(stored):,}, attributed {replies:,}, replied {replied:,}")


async def post_reply(http: httpx.AsyncClient, frm: str, sid: str) -> None:
    """Twilio's signed webhook for one reply, timed to its answer (applied after it)."""
    await post_inbound(http, inbound_form(frm=frm, to=NUMBER, body="yes, call me", sid=sid))


async def drained() -> None:
    """Waits until every accepted reply has been applied."""
    collection = PendingInbound.get_pymongo_collection()
    while True:
        if await collection.find_one({"failed": False}, {"_id": 1}) is None:
            return
        await asyncio.sleep(0.02)


LOAD_CHUNK = 5_000


async def load_inbox(org: Org, size: int, start: int) -> None:
    """`size` conversations, each a contact that replied once to a sent campaign: contacts,
    recipients, messages, activity entries and summaries inserted in bulk through PyMongo (the
    summaries made by the app's own `summarize`, as its writers make them); 100,000 through
    the app's endpoints took 10 minutes."""
    tenant = org.tenant()
    now = utcnow()
    campaign_id = ObjectId()
    await tenant.raw_insert_many(
        Campaign,
        [
            {
                "_id": campaign_id,
                "name": f"Loaded {size}",
                "message": "Hi {{firstName}}, are you still interested?",
                "status": "completed",
                "createdBy": {"_id": org.user, "fullName": "Bench"},
                "userIds": [],
                "createdAt": now,
                "updatedAt": now,
            }
        ],
        ordered=False,
    )
    for offset in range(0, size, LOAD_CHUNK):
        contacts, recipients, messages, entries, kept = [], [], [], [], []
        for n in range(offset, min(size, offset + LOAD_CHUNK)):
            contact_id, message_id = ObjectId(), ObjectId()
            contacts.append(
                {
                    "_id": contact_id,
                    "firstName": f"P{start + n}",
                    "lastName": "",
                    "phoneNumber": f"+1{3_000_000_000 + start + n}",
                    "tags": [],
                    "optedOut": False,
                    "version": 0,
                    "page": n // CONTACTS_PER_PAGE,
                    "createdAt": now,
                    "updatedAt": now,
                }
            )
            recipients.append(
                {
                    "_id": ObjectId(),
                    "campaignId": campaign_id,
                    "contactId": contact_id,
                    "status": "sent",
                    "sentAt": now,
                    "sender": f"phone:{NUMBER}",
                    "seq": n,
                    "batch": n // 100,
                    "head": n < 21,
                    "createdAt": now,
                    "updatedAt": now,
                }
            )
            message = {
                "_id": message_id,
                "contactId": contact_id,
                "direction": "inbound",
                "body": f"reply {n}",
                "media": [],
                "fromNumber": None,
                "toNumber": NUMBER,
                "sender": f"phone:{NUMBER}",
                "providerMessageId": new_sid(),
                "status": "received",
                "campaignId": campaign_id,
                "createdAt": now,
                "updatedAt": now,
            }
            messages.append(message)
            entries.append(
                {
                    "_id": f"{org.id}:{n}",
                    "n": n,
                    "page": n // ACTIVITY_PAGE,
                    "contactId": contact_id,
                    "messageId": message_id,
                    "direction": "inbound",
                    "at": now,
                }
            )
            made = summarize(contact_id, [ThreadMessage.of_message(message)], [], [n])
            assert made is not None
            kept.append(
                {
                    "_id": summary_id(tenant, contact_id),
                    **made.document(),
                    "createdAt": now,
                    "updatedAt": now,
                }
            )
        for model, rows in (
            (Contact, contacts),
            (Recipient, recipients),
            (Message, messages),
            (Activity, entries),
            (ConversationSummary, kept),
        ):
            await tenant.raw_insert_many(model, rows, ordered=False)


async def inbox_floor(org_id: ObjectId, last: int) -> None:
    """The least a first inbox page reads: the newest summaries by equality on their bucket
    (the one holding the newest activity, and the one below when it holds fewer than 21),
    and their 20 contacts by id (one `$in`)."""
    summaries = ConversationSummary.get_pymongo_collection()
    top = last // SUMMARY_BUCKET
    buckets = [top] if last % SUMMARY_BUCKET >= 20 else [top, top - 1]
    found = await asyncio.gather(
        *(summaries.find({"organizationId": org_id, "bucket": b}).to_list() for b in buckets)
    )
    newest = sorted((row for part in found for row in part), key=lambda row: -row["n"])[:20]
    ids = [row["contactId"] for row in newest]
    query = {"_id": {"$in": ids}, "organizationId": org_id}
    await Contact.get_pymongo_collection().find(query).to_list()


async def inbox_page(http: httpx.AsyncClient, org: Org, size: int, problems: list[str]) -> None:
    body = await gql(http, INBOX_QUERY, None, org.headers)
    edges = body["data"]["conversations"]["edges"]
    if len(edges) != 20 or edges[0]["node"]["lastMessage"]["body"] != f"reply {size - 1}":
        problems.append(f"inbox at {size}: {body}")


async def inbox(
    http: httpx.AsyncClient, sizes: list[int], beside: int, problems: list[str]
) -> None:
    """The first page of an organization of each size, with another organization of `beside`
    conversations in the same collections."""
    start = 0
    if beside:
        started = time.perf_counter()
        await load_inbox(Org(http), beside, start)
        start += beside
        print(
            f"\nloaded {beside:,} conversations of another organization in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    print(
        f"first inbox page, 20 conversations ({INBOX_SAMPLES} samples)  p50 ms   p95 ms | "
        "floor p50   p95 | ratio p50 / p95"
    )
    for size in sizes:
        org = Org(http)
        started = time.perf_counter()
        await load_inbox(org, size, start)
        start += size
        loaded = time.perf_counter() - started
        floor = partial(inbox_floor, org.id, size - 1)
        page = partial(inbox_page, http, org, size, problems)
        await page()  # warm
        await floor()
        app_lat, floor_lat = [], []
        for _ in range(INBOX_SAMPLES):  # interleaved, so a busy moment hits both
            app_lat += (await timed_all([page], 1))[0]
            floor_lat += (await timed_all([floor], 1))[0]
        (a50, a95), (f50, f95) = ms(app_lat), ms(floor_lat)
        print(
            f"  {size:>7,} conversations (+{beside:,} beside)  {a50:9.1f} {a95:8.1f} | "
            f"{f50:9.1f} {f95:5.1f} | {a50 / f50:.2f}x / {a95 / f95:.2f}x   (target p95 "
            f"{TARGET_INBOX_P95_MS:.0f} ms; loaded in {loaded:.0f} s)",
            flush=True,
        )


RECEIVED = "subscription { messageReceived { id body contact { phoneNumber } } }"
BYSTANDER_QUERY = "query ($id: ID!) { contact(id: $id) { id phoneNumber firstName } }"
BYSTANDER_SAMPLES = 300
TRICKLE_S = 1.0


async def subscriber(base: str, tok: str, counts: list[int]) -> ClientConnection:
    socket = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_queue=None,
    )
    auth = {"Authorization": f"Bearer {tok}"}
    await socket.send(json.dumps({"type": "connection_init", "payload": auth}))
    await socket.recv()
    payload = {"query": RECEIVED}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

    async def count() -> None:
        async for _ in socket:
            counts[0] += 1

    task = asyncio.create_task(count())
    socket.reader_task = task  # type: ignore[attr-defined]  # kept alive with the socket
    return socket


async def bystander_p95(http: httpx.AsyncClient, org: Org, contact_id: str) -> tuple[float, float]:
    latencies = []
    for _ in range(BYSTANDER_SAMPLES):
        started = time.perf_counter()
        body = await gql(http, BYSTANDER_QUERY, {"id": contact_id}, org.headers)
        latencies.append(time.perf_counter() - started)
        assert body["data"]["contact"]["id"] == contact_id, body
    return ms(latencies)


async def open_inboxes(settings: Settings, count: int, problems: list[str]) -> None:
    """`count` open inboxes of one organization against a bystander's `contact(id)`, with the
    app in a process of its own (the subscribers' client work stays in this one)."""
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "JWT_SECRET": TEST_JWT_SECRET,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_PUBLIC_URL": PUBLIC,
        "DISPATCH_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    sockets: list[ClientConnection] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(600):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            org, bystander = Org(http), Org(http)
            await own(http, org, NUMBER)
            created = await bystander.create(1)
            contact_id = (await bystander.campaign(created))["userIds"][0]
            await bystander_p95(http, bystander, contact_id)  # warm
            before = await bystander_p95(http, bystander, contact_id)
            counts = [0]
            tok = org.headers["Authorization"].removeprefix("Bearer ")
            for _ in range(count):
                sockets.append(await subscriber(base, tok, counts))
            sent = 0
            stop = asyncio.Event()

            async def trickle() -> None:
                nonlocal sent
                while not stop.is_set():
                    phone = f"+1212{3000000 + sent:07d}"
                    form = inbound_form(frm=phone, to=NUMBER, body="yes, call me")
                    await post_inbound(http, form)
                    sent += 1
                    await asyncio.sleep(TRICKLE_S)

            trickling = asyncio.create_task(trickle())
            await asyncio.sleep(2)
            loaded = await bystander_p95(http, bystander, contact_id)
            stop.set()
            await trickling
            await asyncio.sleep(3)  # the last messages reach every subscriber
            for socket in sockets:
                await socket.close()
            sockets.clear()
            after = await bystander_p95(http, bystander, contact_id)
        idle95 = (before[1] + after[1]) / 2
        print(
            f"\nopen inboxes: {count} messageReceived subscribers, {sent} webhooks every "
            f"{TRICKLE_S} s, {counts[0]:,} messages pushed\n"
            f"  bystander contact(id) p50/p95 ms: idle {before[0]:.1f}/{before[1]:.1f}, "
            f"loaded {loaded[0]:.1f}/{loaded[1]:.1f}, idle again {after[0]:.1f}/{after[1]:.1f}"
            f"  -> loaded p95 {loaded[1] / idle95:.2f}x idle (target <= 1.5x)",
            flush=True,
        )
        if counts[0] < count * (sent - 1):
            problems.append(f"{counts[0]} messages pushed for {sent} webhooks x {count}")
    finally:
        for socket in sockets:
            await socket.close()
        server.terminate()
        await server.wait()


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print(
            "MONGODB_URI is not set; run through `make bench` (scripts.dbserver)", file=sys.stderr
        )
        return 2
    count = max([args.single + 2 * args.burst, *args.sizes])
    settings = bench_settings(uri, count, count * 80).model_copy(
        update={**WEBHOOK_SETTINGS, "dispatch_rate_per_second": 0}
    )
    problems: list[str] = []
    admin = create_client(settings)
    try:
        server = await server_description(admin)
        print("server:", ", ".join(f"{k} {v}" for k, v in server.items() if v))
    finally:
        await admin.close()
    try:
        with TemporaryDirectory() as tmp:
            async with serving(create_app(settings)) as http:
                if not args.skip_webhooks:
                    await webhooks(http, args, problems, Path(tmp))
                await inbox(http, args.sizes, args.beside, problems)
        if args.subscribers:
            await open_inboxes(settings, args.subscribers, problems)
    finally:
        admin = create_client(settings)
        try:
            await admin.drop_database(settings.mongodb_db)
        finally:
            await admin.close()
    return exit_code(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--single", type=int, default=200, help="webhooks one at a time")
    parser.add_argument("--burst", type=int, default=1_000, help="webhooks per burst")
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument(
        "--beside", type=int, default=100_000, help="another organization's conversations"
    )
    parser.add_argument("--subscribers", type=int, default=200, help="open inboxes (0: none)")
    parser.add_argument("--skip-webhooks", action="store_true", help="only the inbox")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
