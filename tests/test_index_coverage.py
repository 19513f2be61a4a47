"""Production is MongoDB: every query the app sent during the suite is served by an index the
models declare, under MongoDB's rules (see `tests.index_gate`). The embedded server answers
without indexes too, so nothing else would notice a query that walks a whole collection."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from core.config import Settings
from models import Campaign
from tests.index_gate import (
    UNTRACED,
    Index,
    QueryRecorder,
    acceptable,
    declared_indexes,
    idle_indexes,
    index_coverage_problems,
    index_serves,
    shapes_of,
)
from tests.support import ROOT, auth, create_campaign, gql, phones, token


async def test_the_recorder_sees_the_apps_queries_and_not_the_tests(
    client: httpx.AsyncClient, recorded_queries: QueryRecorder
) -> None:
    """Without this, a recorder that saw nothing would let the check above pass."""
    org = ObjectId()
    made = await create_campaign(client, org, newContacts=phones(1))
    pause = f'mutation {{ pauseCampaign(id: "{made["_id"]}") {{ userErrors {{ code }} }} }}'
    await gql(client, pause, headers=auth(token(org=org)))
    answer = await client.get("/api/campaigns?status=paused", headers=auth(token(org=org)))
    assert answer.status_code == 200 and len(answer.json()["data"]) == 1
    # the page read from the status's matches, newest first
    mine = [
        origin
        for shape, origin in recorded_queries.shapes.items()
        if shape.collection == "campaigns"
        and shape.equality == {"organizationId", "status"}
        and shape.sort == ("listSeq",)
    ]
    assert mine and all(origin.startswith("services/") for origin in mine), mine
    before = dict(recorded_queries.shapes)
    await Campaign.find({"name": "a query of the test's own", "process": "x"}).to_list()
    assert recorded_queries.shapes == before


@pytest.mark.after_all
def test_every_query_the_app_sent_is_served_by_a_declared_index(
    recorded_queries: QueryRecorder, pytestconfig: pytest.Config
) -> None:
    """Alone, this process saw everything the session ran. As one pytest-xdist worker it
    saw its share, and the controller judges every worker's once all have finished
    (`tests.index_gate.IndexCoverageGate`)."""
    whole_suite = not hasattr(pytestconfig, "workerinput")
    problems = index_coverage_problems(recorded_queries.shapes, whole_suite=whole_suite)
    assert problems == [], "\n".join(problems)


def test_a_query_no_declared_index_serves_is_reported_after_a_workers_hand_over() -> None:
    """The verdict fails on an unserved query, also once it went through a worker's dump."""
    served = shapes_of("recipients", {"organizationId": 1, "campaignId": 2, "batch": 3})[0]
    unserved = shapes_of("recipients", {"organizationId": 1, "phone": 2})[0]
    unknown = shapes_of("no_such_collection", {"organizationId": 1})[0]
    worker = QueryRecorder({served: "services/a.py:1", unserved: "services/b.py:2"})
    controller = QueryRecorder({unknown: "services/c.py:3"})
    controller.merge(worker.dump())
    assert controller.shapes == worker.shapes | {unknown: "services/c.py:3"}
    assert index_coverage_problems({served: "services/a.py:1"}, whole_suite=True) == []
    assert index_coverage_problems(controller.shapes, whole_suite=True) == [
        "a query on no_such_collection, a collection no model declares",
        f"not served by a declared index: {unserved}  (from services/b.py:2)",
    ]


GATE_CONFTEST = """
from tests.index_gate import IndexCoverageGate, QueryRecorder

RECORDER = QueryRecorder()


def pytest_configure(config):
    controller = not hasattr(config, "workerinput") and bool(config.option.tx)
    config.pluginmanager.register(IndexCoverageGate(RECORDER, controller=controller), "gate")
"""

GATE_TESTS = """
import pytest

from tests.index_gate import shapes_of
from conftest import RECORDER


@pytest.mark.parametrize("n", range(4))
def test_sends(n):
    query = {"organizationId": 1, "campaignId": n} if n else {"organizationId": 1, "nope": 2}
    RECORDER.shapes[shapes_of("recipients", query)[0]] = f"services/fake.py:{n}"


@pytest.mark.after_all
def test_last():
    pass
"""


def test_the_controller_fails_a_run_when_one_workers_query_is_not_served(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate as `make test` runs it, in a session of its own with two workers: the one
    unserved query fails the run, whichever worker sent it."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(GATE_CONFTEST)
    pytester.makepyfile(test_gate=GATE_TESTS)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    after_all: last\n"
    )
    # Without the plugins the gate does not use: each of the three processes loads less.
    quiet = ["-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio"]
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "-p", "no:cacheprovider", *quiet
    )
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*declared indexes no recorded query needs (each write pays for them): *recipients.*",
            "*not served by a declared index: recipients: eq=*nope*(from services/fake.py:0)",
            "FAILED tests/test_index_coverage.py::every query of every worker is index-served*",
        ]
    )


ORG_CAMPAIGN_BATCH = [Index(("organizationId", "campaignId", "batch", "seq"), unique=False)]


@pytest.mark.parametrize(
    ("query", "sort", "indexes", "expected"),
    [
        ({"organizationId": 1, "campaignId": 2, "batch": 3}, (), ORG_CAMPAIGN_BATCH, True),
        ({"campaignId": 2, "organizationId": 1}, (), ORG_CAMPAIGN_BATCH, True),
        ({"organizationId": 1, "batch": 3}, (), ORG_CAMPAIGN_BATCH, False),  # a gap
        (
            {"organizationId": 1, "campaignId": 2, "batch": 3, "seq": {"$gte": 0}},
            (),
            ORG_CAMPAIGN_BATCH,
            True,
        ),
        ({"organizationId": 1, "campaignId": 2, "seq": {"$gte": 0}}, (), ORG_CAMPAIGN_BATCH, False),
        ({"organizationId": 1, "campaignId": 2}, ("batch",), ORG_CAMPAIGN_BATCH, True),
        ({"organizationId": 1, "campaignId": 2}, ("seq",), ORG_CAMPAIGN_BATCH, False),
        ({"_id": 1, "organizationId": 1}, (), [], True),
        (
            {"organizationId": 1, "phone": 2, "extra": 3},
            (),
            [Index(("organizationId", "phone"), unique=True)],
            True,
        ),
        (
            {"organizationId": 1, "phone": 2, "extra": 3},
            (),
            [Index(("organizationId", "phone"), unique=False)],
            False,
        ),
        (
            {"organizationId": 1, "$or": [{"a": 1}, {"b": {"$gt": 1}}]},
            (),
            [Index(("organizationId", "a"), unique=False), Index(("organizationId", "b"), False)],
            True,
        ),
        ({"organizationId": 1, "name": {"$where": "1"}}, (), ORG_CAMPAIGN_BATCH, False),
        # a page's first recipients: `$in` is equality, then a range on the next key
        (
            {"organizationId": 1, "campaignId": {"$in": [1, 2]}, "batch": 0, "seq": {"$lte": 5}},
            (),
            ORG_CAMPAIGN_BATCH,
            True,
        ),
        ({"organizationId": 1, "campaignId": {"$in": [1, 2]}}, ("seq",), ORG_CAMPAIGN_BATCH, False),
    ],
)
def test_the_rule_of_a_compound_index(
    query: dict[str, object], sort: tuple[str, ...], indexes: list[Index], expected: bool
) -> None:
    shapes = shapes_of("c", query, sort)
    assert all(index_serves(shape, indexes) for shape in shapes) is expected


def test_an_index_whose_every_query_another_serves_as_well_is_reported_idle() -> None:
    """Information the gate prints after a whole run (every index costs each write): of two
    indexes serving the same queries the first declared stays, an index serving a query no
    other does stays, and unique ones keep a rule, never idle."""
    declared = {
        "c": [
            Index(("_id",), unique=True, name="_id_"),
            Index(("organizationId", "status", "listSeq"), unique=False, name="by_status"),
            Index(("organizationId", "status", "createdAt"), unique=False, name="status_created"),
            Index(("organizationId", "createdAt"), unique=False, name="by_created"),
            Index(("organizationId", "phone"), unique=True, name="phone_unique"),
            Index(("organizationId", "other"), unique=False, name="unused"),
        ]
    }
    shapes = [
        *shapes_of("c", {"organizationId": 1, "status": 2}),
        *shapes_of("c", {"organizationId": 1, "createdAt": {"$gt": 1}}),
        *shapes_of("c", {"_id": 1, "organizationId": 1}),
    ]
    assert idle_indexes(shapes, declared) == ["c.status_created", "c.unused"]
    assert idle_indexes(shapes[:1], declared) == ["c.by_created", "c.status_created", "c.unused"]


def test_a_residual_range_is_checked_on_the_rows_an_index_on_a_residual_equality_serves() -> None:
    """A status (a residual field with an index of its own) by equality, in list-number order,
    with a name search on top: the status index serves the order, the search is checked on
    its rows. A residual equality no index starts with does not help."""
    campaigns = declared_indexes()["campaigns"]
    search = {"$regex": "x", "$options": "i"}
    [by_status] = shapes_of(
        "campaigns", {"organizationId": 1, "status": "a", "name": search}, ("listSeq",)
    )
    assert acceptable(by_status, campaigns)
    [by_type] = shapes_of(
        "campaigns", {"organizationId": 1, "type": "sms", "name": search}, ("listSeq",)
    )
    assert not acceptable(by_type, campaigns)


async def test_a_query_a_task_awaits_alone_is_judged_not_skipped(settings: Settings) -> None:
    """A cursor handed to `asyncio.gather` runs in a task whose stack starts in the driver: no
    frame says who sent it, and such a query is recorded (and judged) rather than taken for
    the test's own."""
    recorder = QueryRecorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri, event_listeners=[recorder]
    )
    try:
        contacts = client[settings.mongodb_db]["contacts"]
        # A served shape: the session's own recorder sees this query too, and judges it.
        await asyncio.gather(contacts.find({"organizationId": 1, "phoneNumber": "x"}).to_list())
        await contacts.find({"organizationId": 1, "shoeSize": 9}).to_list()  # the test's own
    finally:
        await client.close()
    untraced = shapes_of("contacts", {"organizationId": 1, "phoneNumber": "x"})[0]
    assert recorder.shapes == {untraced: UNTRACED}
