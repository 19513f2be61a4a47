"""Times creating a campaign with N new contacts against the raw database floor.

Three cases, on the same database server, interleaved in every round:

(a) REST `POST /api/campaigns` through the real app (ASGI, in process);
(b) the GraphQL `createCampaign` mutation through the same app;
(c) the floor: PyMongo `insert_many` of the same N contacts and N recipients plus one campaign,
    into collections with the app's indexes, so it pays for the same index maintenance.

Each run of (a) and (b) uses a fresh organization, a fresh database and phone numbers not used
before in the process (so every contact is new, to the database and to any cache in the service,
and every collection starts empty), and only the request itself is timed: the app's start-up
(index creation), the client-side encoding of the body and the decoding of the response are not.
(c) writes the round's REST contacts again, into a database of its own, and times only the
three inserts; its documents are built beforehand (that cost is printed separately). Every
run's database is dropped afterwards.

Run with `make bench`, i.e.
    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.create_campaign [--runs 5] [--contacts 10000] [--json PATH]

Exits 1 when a run did not do what it claims (status, stats.total, documents written); timing
against the target ratio is reported, never failed on.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import FastAPI

from core.config import Settings
from core.db import MongoClient, create_client, init_database
from main import create_app
from models import Campaign
from models.base import utcnow
from models.campaign import CampaignStats, CampaignStatus, CreatedBy, MessageStats
from models.recipient import HEAD_SIZE, RECIPIENT_BATCH, RecipientStatus
from services.campaigns.templates import parse_template, sms_cost
from tests.support import TEST_JWT_SECRET, auth, token

TARGET_RATIO = 1.5
MESSAGE = "Hi {{firstName|there}}, our spring offer ends Friday. Reply STOP to opt out."
FULL_NAME = "Bench Rep"
DEFAULT_MAX_BODY = Settings.model_fields["max_body_bytes"].default
DEFAULT_MAX_RECIPIENTS = Settings.model_fields["max_recipients"].default

# Area code + exchange prefixes of US numbers that `phonenumbers` accepts as valid; candidates
# are still checked one by one, and the few it refuses are skipped.
PHONE_PREFIXES = ("12122", "16462", "19172", "17182", "14152", "13102", "13122", "16172")

GRAPHQL_MUTATION = """
mutation BenchCreateCampaign($input: CreateCampaignInput!) {
  createCampaign(input: $input) {
    userErrors { field code message }
    campaign {
      id
      status
      userIds
      stats { total }
      messageStats { encoding segments characters }
    }
  }
}
"""

CASES: dict[str, str] = {
    "a": "(a) REST POST /api/campaigns",
    "b": "(b) GraphQL createCampaign",
    "c": "(c) raw PyMongo floor",
}


# -- input data -----------------------------------------------------------------------------


def _candidate_phones() -> Iterator[str]:
    """Yields distinct E.164 US numbers that `phonenumbers.is_valid_number` accepts."""
    for prefix in PHONE_PREFIXES:
        for suffix in range(1_000_000):
            candidate = f"+{prefix}{suffix:06d}"
            number = phonenumbers.parse(candidate, None)
            if not phonenumbers.is_valid_number(number):
                continue
            if phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != candidate:
                continue
            yield candidate


class ContactSource:
    """Hands out contacts whose phones were never handed out before in this process.

    Every run of (a) and (b) gets phones of its own, so neither the database nor a cache in
    the service (say, of normalised phones) has seen them: all contacts are new every time.
    """

    def __init__(self) -> None:
        self._phones = _candidate_phones()

    def take(self, count: int) -> list[dict[str, str]]:
        """Returns the `newContacts` of one request: phones already E.164, all fields set."""
        contacts: list[dict[str, str]] = []
        for i, phone in zip(range(count), self._phones, strict=False):
            contacts.append(
                {
                    "firstName": f"Ann{i}",
                    "lastName": f"Lee{i}",
                    "phoneNumber": phone,
                    "email": f"ann.lee{i}@example.com",
                }
            )
        if len(contacts) < count:
            raise SystemExit(f"ran out of valid phone numbers under {PHONE_PREFIXES}")
        return contacts


def schedule_date() -> str:
    """Returns a scheduleDate a day from now, in the legacy millisecond format."""
    when = datetime.now(UTC) + timedelta(days=1)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def bench_settings(uri: str, count: int, body_bytes: int) -> Settings:
    """Test settings on a fresh database; limits stay at their defaults unless N needs more."""
    return Settings(
        environment="test",
        mongodb_uri=uri,
        mongodb_db=f"bench_{uuid.uuid4().hex[:12]}",
        mongodb_timeout_ms=30_000,
        jwt_secret=TEST_JWT_SECRET,
        log_level="WARNING",
        max_body_bytes=max(DEFAULT_MAX_BODY, 2 * body_bytes),
        max_recipients=max(DEFAULT_MAX_RECIPIENTS, count),
        # The benchmarks decide who sends and when: no dispatcher in the API processes they
        # start, and no quiet hours (a night-time run would otherwise wait for 08:00).
        dispatch_in_process=False,
        send_window_start="00:00",
        send_window_end="24:00",
    )


# -- results --------------------------------------------------------------------------------


@dataclass
class Run:
    case: str
    seconds: float
    ok: bool
    problems: list[str] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Bench:
    uri: str
    admin: MongoClient
    source: ContactSource = field(default_factory=ContactSource)
    failures: list[str] = field(default_factory=list)


async def count_written(
    admin: MongoClient, db_name: str, org: ObjectId, count: int, problems: list[str]
) -> None:
    """Checks that the database holds exactly the campaign's documents."""
    db = admin[db_name]
    expected = {"contacts": count, "recipients": count, "campaigns": 1}
    for collection, want in expected.items():
        got = await db[collection].count_documents({"organizationId": org})
        if got != want:
            problems.append(f"{collection}: {got} documents stored, expected {want}")


# -- (a) and (b): through the app -----------------------------------------------------------


def rest_body(contacts: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "name": "Bench campaign",
        "message": MESSAGE,
        "newContacts": contacts,
        "scheduleDate": schedule_date(),
    }


def graphql_body(contacts: list[dict[str, str]]) -> dict[str, Any]:
    return {"query": GRAPHQL_MUTATION, "variables": {"input": rest_body(contacts)}}


def check_rest(response: httpx.Response, count: int, problems: list[str]) -> None:
    if response.status_code != 201:
        problems.append(f"HTTP {response.status_code}: {response.text[:500]}")
        return
    data = response.json()["data"]
    if data["stats"]["total"] != count:
        problems.append(f"stats.total is {data['stats']['total']}, expected {count}")
    if len(data["userIds"]) != count or data["failedDetails"]:
        problems.append(
            f"{len(data['userIds'])} userIds and {len(data['failedDetails'])} failedDetails"
        )


def check_graphql(response: httpx.Response, count: int, problems: list[str]) -> None:
    if response.status_code != 200:
        problems.append(f"HTTP {response.status_code}: {response.text[:500]}")
        return
    body = response.json()
    if body.get("errors"):
        problems.append(f"GraphQL errors: {json.dumps(body['errors'])[:500]}")
        return
    payload = body["data"]["createCampaign"]
    if payload["userErrors"]:
        problems.append(f"userErrors: {json.dumps(payload['userErrors'])[:500]}")
        return
    campaign = payload["campaign"]
    if campaign["stats"]["total"] != count:
        problems.append(f"stats.total is {campaign['stats']['total']}, expected {count}")
    if len(campaign["userIds"]) != count:
        problems.append(f"{len(campaign['userIds'])} userIds, expected {count}")


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Starts the app (its lifespan creates the indexes) and yields an in-process client."""
    async with (
        LifespanManager(app, startup_timeout=120, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=None
        ) as http,
    ):
        yield http


async def run_app_case(
    bench: Bench,
    case: str,
    contacts: list[dict[str, str]],
    profiler: cProfile.Profile | None = None,
) -> Run:
    """Creates one campaign through the app, on a fresh database and organization."""
    if case == "a":
        path, payload, check = "/api/campaigns", rest_body(contacts), check_rest
    else:
        path, payload, check = "/graphql", graphql_body(contacts), check_graphql
    body = json.dumps(payload, separators=(",", ":")).encode()
    settings = bench_settings(bench.uri, len(contacts), len(body))
    org = ObjectId()
    headers = {
        **auth(token(org=org, name=FULL_NAME)),
        "Content-Type": "application/json",
    }
    app = create_app(settings)
    problems: list[str] = []
    try:
        async with serving(app) as http:
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            response = await http.post(path, content=body, headers=headers)
            seconds = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
        check(response, len(contacts), problems)
        await count_written(bench.admin, settings.mongodb_db, org, len(contacts), problems)
    finally:
        await bench.admin.drop_database(settings.mongodb_db)
    return Run(case, seconds, not problems, problems)


# -- (c): the floor -------------------------------------------------------------------------


def raw_recipient(
    campaign_id: ObjectId, contact_id: Any, stamp: dict[str, Any], seq: int = 0
) -> dict[str, Any]:
    """Returns a pending recipient as the service stores it; `stamp` has owner and times."""
    return {
        "_id": ObjectId(),
        "campaignId": campaign_id,
        "contactId": contact_id,
        "seq": seq,
        "batch": seq // RECIPIENT_BATCH,
        "head": seq < HEAD_SIZE,
        "status": RecipientStatus.PENDING.value,
        "assignedTo": None,
        "providerMessageId": None,
        "error": None,
        "attempts": 0,
        "sentAt": None,
        **stamp,
    }


def floor_documents(
    contacts: list[dict[str, str]], org: ObjectId
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Builds what the service writes, field for field, for the floor to insert raw."""
    now = utcnow()
    stamp = {"organizationId": org, "createdAt": now, "updatedAt": now}
    contact_docs = [
        {
            "_id": ObjectId(),
            "firstName": c["firstName"],
            "lastName": c["lastName"],
            "phoneNumber": c["phoneNumber"],
            "email": c["email"],
            "contactStatus": None,
            "process": None,
            "tags": [],
            "assignedTo": None,
            "optedOut": False,
            **stamp,
        }
        for c in contacts
    ]
    campaign_id = PydanticObjectId()
    recipient_docs = [
        raw_recipient(campaign_id, doc["_id"], stamp, seq) for seq, doc in enumerate(contact_docs)
    ]
    template = parse_template(MESSAGE)
    longest = max(
        (template.render(c).text for c in contacts), key=len, default=template.render({}).text
    )
    cost = sms_cost(longest)
    campaign = Campaign(
        id=campaign_id,
        organizationId=PydanticObjectId(org),
        name="Bench campaign",
        message=MESSAGE,
        status=CampaignStatus.SCHEDULED,
        scheduleDate=datetime.now(UTC) + timedelta(days=1),
        createdBy=CreatedBy(id=PydanticObjectId(), fullName=FULL_NAME),
        stats=CampaignStats(total=len(contacts)),
        messageStats=MessageStats(
            encoding=cost.encoding, segments=cost.segments, characters=cost.characters
        ),
        createdAt=now,
        updatedAt=now,
    )
    return contact_docs, recipient_docs, campaign.model_dump(by_alias=True, exclude_none=False)


async def run_floor(bench: Bench, contacts: list[dict[str, str]]) -> Run:
    """Inserts the same documents raw into a fresh database that has the app's indexes."""
    db_name = f"bench_floor_{uuid.uuid4().hex[:12]}"
    org = ObjectId()
    problems: list[str] = []
    try:
        await init_database(bench.admin, db_name)  # Beanie creates the app's indexes here
        db = bench.admin[db_name]
        built = time.perf_counter()
        contact_docs, recipient_docs, campaign_doc = floor_documents(contacts, org)
        build_seconds = time.perf_counter() - built
        started = time.perf_counter()
        inserted_contacts = await db["contacts"].insert_many(contact_docs, ordered=False)
        inserted_recipients = await db["recipients"].insert_many(recipient_docs, ordered=True)
        inserted_campaign = await db["campaigns"].insert_one(campaign_doc)
        seconds = time.perf_counter() - started
        inserted = (
            len(inserted_contacts.inserted_ids)
            + len(inserted_recipients.inserted_ids)
            + int(inserted_campaign.inserted_id is not None)
        )
        if inserted != 2 * len(contacts) + 1:
            problems.append(f"inserted {inserted} documents, expected {2 * len(contacts) + 1}")
        await count_written(bench.admin, db_name, org, len(contacts), problems)
    finally:
        await bench.admin.drop_database(db_name)
    return Run("c", seconds, not problems, problems, {"build_seconds": build_seconds})


# -- the run ------------------------------------------------------------------------------


async def run_round(bench: Bench, count: int) -> list[Run]:
    """Runs a, b, c once each; a and b get phones of their own, c writes a's contacts again."""
    rest_contacts = bench.source.take(count)
    graphql_contacts = bench.source.take(count)
    return [
        await run_app_case(bench, "a", rest_contacts),
        await run_app_case(bench, "b", graphql_contacts),
        await run_floor(bench, rest_contacts),
    ]


async def server_description(admin: MongoClient) -> dict[str, str]:
    """Names the server from `buildInfo`: FerretDB reports itself in `ferretdbVersion`."""
    info = await admin.admin.command("buildInfo")
    version = str(info.get("version", "?"))
    ferret = info.get("ferretdbVersion") or (info.get("ferretdb") or {}).get("version")
    build = info.get("buildEnvironment") or {}
    if ferret:
        return {
            "name": "FerretDB",
            "version": str(ferret),
            "compat_version": version,
            "go": str(build.get("go.version", "")),
        }
    return {"name": "MongoDB", "version": version, "compat_version": version, "go": ""}


def summarize(runs: list[Run], count: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case in CASES:
        times = [r.seconds for r in runs if r.case == case]
        median = statistics.median(times)
        out[case] = {
            "label": CASES[case],
            "seconds": times,
            "median": median,
            "min": min(times),
            "contacts_per_second": count / median if median else 0.0,
        }
    builds = [r.extra["build_seconds"] for r in runs if r.case == "c"]
    out["c"]["build_median"] = statistics.median(builds)
    return out


def print_report(
    server: dict[str, str],
    args: argparse.Namespace,
    summary: dict[str, dict[str, Any]],
    ratios: dict[str, float],
    failures: list[str],
) -> None:
    server_text = f"{server['name']} {server['version']}"
    if server["name"] == "FerretDB":
        server_text += f" (buildInfo.version {server['compat_version']}, built with {server['go']})"
    print()
    print(f"server    {server_text}")
    print(
        f"python    {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"workload  {args.contacts} new contacts per campaign, {args.runs} runs per case "
        f"(+{args.warmup} warm-up of {min(args.contacts, 100)}), rounds interleave a, b, c"
    )
    print(
        "          fresh organization, database and phone numbers for every app run; "
        "only the request is timed"
    )
    print()
    header = f"{'case':<30} {'median s':>9} {'min s':>8} {'contacts/s':>11} {'vs (c)':>7}"
    print(header + f"  target <= {TARGET_RATIO}")
    print("-" * (len(header) + 17))
    for case, row in summary.items():
        ratio = ratios.get(case)
        verdict = "" if ratio is None else ("meets" if ratio <= TARGET_RATIO else "MISSES")
        ratio_text = "1.00" if ratio is None else f"{ratio:.2f}"
        print(
            f"{row['label']:<30} {row['median']:>9.3f} {row['min']:>8.3f} "
            f"{row['contacts_per_second']:>11,.0f} {ratio_text:>7}  {verdict}"
        )
    print()
    for case, row in summary.items():
        print(f"runs {case}    " + "  ".join(f"{s:.3f}" for s in row["seconds"]))
    print(
        f"(c) builds its documents in {summary['c']['build_median']:.3f} s (median), "
        "outside its timing"
    )
    print(
        f"ratios    a/c = {ratios['a']:.2f} ({'meets' if ratios['a'] <= TARGET_RATIO else 'misses'}"
        f" target), b/c = {ratios['b']:.2f} "
        f"({'meets' if ratios['b'] <= TARGET_RATIO else 'misses'} target)"
    )
    if failures:
        print()
        print(f"VERIFICATION FAILED ({len(failures)}):")
        for failure in failures:
            print(f"  {failure}")
    else:
        print("verified  every run: REST 201 / GraphQL no userErrors, stats.total == N,")
        print("          N contacts + N recipients + 1 campaign stored (floor: N+N+1 inserted)")


async def profile_rest(bench: Bench, count: int, path: Path, top: int) -> None:
    """Profiles one REST creation with cProfile and prints the top functions."""
    profiler = cProfile.Profile()
    run = await run_app_case(bench, "a", bench.source.take(count), profiler)
    if not run.ok:
        bench.failures.extend(f"profile run: {p}" for p in run.problems)
    profiler.dump_stats(path)
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(order).print_stats(top)
        print(f"\n== cProfile of one REST run ({run.seconds:.3f} s profiled), by {order} ==")
        print(text.getvalue())
    print(f"profile written to {path}")


async def main_async(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """Runs the rounds; returns the exit code and, with --json, the results to write."""
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print(
            "MONGODB_URI is not set; run through `make bench` (scripts.dbserver)", file=sys.stderr
        )
        return 2, None
    admin = create_client(bench_settings(uri, args.contacts, 0))
    bench = Bench(uri=uri, admin=admin)
    result: dict[str, Any] | None = None
    try:
        server = await server_description(admin)
        for _ in range(args.warmup):
            for run in await run_round(bench, min(args.contacts, 100)):
                bench.failures.extend(f"warm-up {run.case}: {p}" for p in run.problems)

        runs: list[Run] = []
        for round_no in range(1, args.runs + 1):
            for run in await run_round(bench, args.contacts):
                runs.append(run)
                bench.failures.extend(f"round {round_no} {run.case}: {p}" for p in run.problems)
                print(
                    f"round {round_no}/{args.runs} {CASES[run.case]:<30} {run.seconds:8.3f} s"
                    f"{'' if run.ok else '  FAILED'}",
                    file=sys.stderr,
                    flush=True,
                )

        summary = summarize(runs, args.contacts)
        ratios = {case: summary[case]["median"] / summary["c"]["median"] for case in ("a", "b")}
        print_report(server, args, summary, ratios, bench.failures)

        if args.json:
            result = {
                "server": server,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cores": os.cpu_count(),
                "contacts": args.contacts,
                "runs": args.runs,
                "warmup": args.warmup,
                "target_ratio": TARGET_RATIO,
                "cases": summary,
                "ratios": {"a/c": ratios["a"], "b/c": ratios["b"]},
                "meets_target": {
                    "a/c": ratios["a"] <= TARGET_RATIO,
                    "b/c": ratios["b"] <= TARGET_RATIO,
                },
                "verified": not bench.failures,
                "failures": bench.failures,
                "all_runs": [asdict(r) for r in runs],
            }

        if args.profile:
            await profile_rest(bench, args.contacts, Path(args.profile), args.profile_top)
    finally:
        await admin.close()
    if result is not None:
        result["verified"] = not bench.failures
        result["failures"] = bench.failures
    return (1 if bench.failures else 0), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.create_campaign",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument(
        "--contacts", type=int, default=10_000, help="new contacts per campaign (default 10000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed warm-up rounds of 100 contacts (default 1)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="afterwards, cProfile one more REST run, print its top functions, dump stats here",
    )
    parser.add_argument("--profile-top", type=int, default=40, help="rows of each profile listing")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.contacts < 1 or args.warmup < 0:
        parser.error("--runs and --contacts must be >= 1, --warmup >= 0")
    code, result = asyncio.run(main_async(args))
    if args.json and result is not None:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"results written to {args.json}")
    return code


if __name__ == "__main__":
    sys.exit(main())
