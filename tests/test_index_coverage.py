"""Production is MongoDB: every query the app sent during the suite is served by an index the
models declare, under MongoDB's rules (see `tests.query_shapes`). The embedded server answers
without indexes too, so nothing else would notice a query that walks a whole collection."""

from __future__ import annotations

import httpx
import pytest
from bson import ObjectId

from models import Campaign
from tests.support import (
    Index,
    QueryRecorder,
    Shape,
    auth,
    declared_indexes,
    index_serves,
    shapes_of,
    token,
)

EXCEPTIONS: dict[str, str] = {}
"""Shapes (as `str(Shape)`) allowed without a serving index, each with the reason."""

RESIDUAL: dict[str, tuple[frozenset[str], str]] = {
    "campaigns": (
        frozenset({"status", "type", "createdBy._id", "name", "scheduleDate", "createdAt"}),
        "A list's optional filters (CampaignFilter, the REST query parameters) combine freely; "
        "the organization's index in the requested order serves the page, and the other "
        "conditions are checked on the campaigns it returns (status and creator alone have "
        "indexes of their own).",
    ),
    "contacts": (
        frozenset(
            {"contactStatus", "optedOut", "tags", "process", "firstName", "lastName", "phoneNumber"}
        ),
        "Contacts are listed by numbered page `{organizationId, page}`; filters and search are "
        "checked on each page's contacts (and a segment's on the organization's contacts in id "
        "order).",
    ),
}
"""Fields a query may carry as residual conditions on top of a served shape, per collection."""


def acceptable(shape: Shape, indexes: list[Index]) -> bool:
    """Served as it is, or once the collection's residual filter fields are set aside."""
    if index_serves(shape, indexes):
        return True
    residual = RESIDUAL.get(shape.collection, (frozenset(), ""))[0]
    core = Shape(
        shape.collection,
        shape.equality - residual,
        shape.ranges - residual,
        shape.sort,
        shape.unsupported,
    )
    return core != shape and index_serves(core, indexes)


async def test_the_recorder_sees_the_apps_queries_and_not_the_tests(
    client: httpx.AsyncClient, recorded_queries: QueryRecorder
) -> None:
    """Without this, a recorder that saw nothing would let the check above pass."""
    org = ObjectId()
    answer = await client.get("/api/campaigns?status=paused", headers=auth(token(org=org)))
    assert answer.status_code == 200
    mine = [
        (shape, origin)
        for shape, origin in recorded_queries.shapes.items()
        if shape.collection == "campaigns" and shape.equality == {"organizationId", "status"}
    ]
    assert mine and all(origin.startswith("services/") for _, origin in mine), mine
    before = dict(recorded_queries.shapes)
    await Campaign.find({"name": "a query of the test's own", "process": "x"}).to_list()
    assert recorded_queries.shapes == before


@pytest.mark.after_all
def test_every_query_the_app_sent_is_served_by_a_declared_index(
    recorded_queries: QueryRecorder,
) -> None:
    shapes = recorded_queries.shapes  # everything the session ran (alone, little to judge)
    indexes = declared_indexes()
    unknown = sorted({s.collection for s in shapes if s.collection not in indexes})
    assert unknown == [], "queries on collections no model declares"
    unserved = sorted(
        f"{shape}  (from {origin})"
        for shape, origin in shapes.items()
        if str(shape) not in EXCEPTIONS and not acceptable(shape, indexes[shape.collection])
    )
    assert unserved == [], "\n".join(unserved)
    stale = sorted(set(EXCEPTIONS) - {str(s) for s in shapes})
    assert stale == [], f"listed exceptions the suite no longer sends: {stale}"


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
    ],
)
def test_the_rule_of_a_compound_index(
    query: dict[str, object], sort: tuple[str, ...], indexes: list[Index], expected: bool
) -> None:
    shapes = shapes_of("c", query, sort)
    assert all(index_serves(shape, indexes) for shape in shapes) is expected
