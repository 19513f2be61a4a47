"""An operator sets an organization's own sending rate from the command line."""

from __future__ import annotations

from bson import ObjectId
from pymongo import AsyncMongoClient

from scripts import org_rate
from tests.support import drop_database, make_settings


async def test_an_operator_sets_and_clears_an_organizations_rate(mongo_uri: str) -> None:
    settings = make_settings(mongo_uri)
    org = ObjectId()
    reader: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        organizations = reader[settings.mongodb_db]["organizations"]
        await org_rate.apply(settings, org, 20)
        stored = await organizations.find_one({"_id": org})
        assert stored is not None and stored["ratePerSecond"] == 20
        await org_rate.apply(settings, org, None)
        stored = await organizations.find_one({"_id": org})
        assert stored is not None and "ratePerSecond" not in stored
    finally:
        await reader.close()
        await drop_database(settings)


def test_bad_arguments_are_refused_before_touching_the_database() -> None:
    assert org_rate.main(["--org", "not-an-id", "--rate", "20"]) == 2
    assert org_rate.main(["--org", str(ObjectId()), "--rate", "fast"]) == 2
    assert org_rate.main(["--org", str(ObjectId()), "--rate", "0"]) == 2
