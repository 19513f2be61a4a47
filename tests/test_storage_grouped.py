"""Grouped inserts (services/storage/grouped.py): a burst of concurrent inserts goes out in a few
commands, and still each caller hears of its own document: stored, a duplicate, or refused."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from pymongo.errors import BulkWriteError

from models import PendingInbound
from services.storage.grouped import GroupedInserts


class Counted:
    """The real collection, counting the commands sent through it."""

    def __init__(self) -> None:
        self.collection = PendingInbound.get_pymongo_collection()
        self.many = 0
        self.one = 0

    async def insert_many(self, documents: Sequence[dict[str, Any]], *, ordered: bool) -> Any:
        self.many += 1
        return await self.collection.insert_many(documents, ordered=ordered)

    async def insert_one(self, document: dict[str, Any]) -> Any:
        self.one += 1
        return await self.collection.insert_one(document)


async def test_a_burst_is_stored_by_few_inserts_and_each_duplicate_is_told(app: FastAPI) -> None:
    counted = Counted()
    inserts = GroupedInserts(counted, most=100)
    await counted.collection.insert_one({"_id": "early"})
    keys = [f"k{i}" for i in range(300)]
    # Every key once, 20 of them twice in the same burst, and one stored before it.
    sent = [*keys, *keys[:20], "early"]
    answers = await asyncio.gather(*(inserts.insert({"_id": key}) for key in sent))
    assert answers.count(True) == 300 and answers.count(False) == 21
    firsts = dict(zip(sent[:300], answers[:300], strict=True))
    assert all(firsts.values())
    stored = await counted.collection.distinct("_id")
    assert sorted(stored) == sorted([*keys, "early"])
    # 321 documents in at most 100 per insert: a handful of commands, not one per document.
    assert 4 <= counted.many <= 8 and counted.one == 0


async def test_a_refused_document_fails_only_its_caller(app: FastAPI) -> None:
    counted = Counted()
    inserts = GroupedInserts(counted)
    # An array is never an _id: the server refuses that document, and only that one.
    refused = inserts.insert({"_id": [1, 2]})
    good = [inserts.insert({"_id": f"g{i}"}) for i in range(10)]
    answers = await asyncio.gather(refused, *good, return_exceptions=True)
    assert isinstance(answers[0], Exception)
    assert answers[1:] == [True] * 10
    assert len(await counted.collection.distinct("_id")) == 10


async def test_a_document_the_driver_cannot_send_fails_only_its_caller(app: FastAPI) -> None:
    counted = Counted()
    inserts = GroupedInserts(counted)
    unsendable = {"_id": "bad", "value": object()}  # BSON has no encoding for it
    answers = await asyncio.gather(
        inserts.insert(unsendable),
        *(inserts.insert({"_id": f"g{i}"}) for i in range(5)),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Exception) and not isinstance(answers[0], BulkWriteError)
    assert answers[1:] == [True] * 5
    assert sorted(await counted.collection.distinct("_id")) == [f"g{i}" for i in range(5)]


async def test_a_caller_that_goes_away_leaves_the_others_answered(app: FastAPI) -> None:
    counted = Counted()
    inserts = GroupedInserts(counted)
    leaving = asyncio.ensure_future(inserts.insert({"_id": "gone"}))
    staying = asyncio.ensure_future(inserts.insert({"_id": "stays"}))
    leaving.cancel()
    assert await staying is True
    with pytest.raises(asyncio.CancelledError):
        await leaving
