"""List numbers (services/storage/slots.py): dense, each claimed once by concurrent writers,
and the numbers at any rank found from the gap records alone, across chapters."""

from __future__ import annotations

import asyncio
import random

from bson import ObjectId
from fastapi import FastAPI

from services.storage import buckets, slots
from services.storage.slots import CHAPTER
from services.storage.tenancy import Tenant


async def test_concurrent_claims_get_dense_distinct_numbers(app: FastAPI) -> None:
    tenant = Tenant.for_organization(ObjectId())
    other = Tenant.for_organization(ObjectId())
    fresh = slots.Slots(slots.CAMPAIGNS.claims)  # a second process: its own hints
    claimed = await asyncio.gather(
        *(s.claim(tenant) for s in [slots.CAMPAIGNS, fresh] * 15), slots.CAMPAIGNS.claim(other)
    )
    mine = claimed[:-1]
    assert sorted(mine) == list(range(30))
    assert claimed[-1] == 0
    assert await fresh.last(tenant) == await slots.CAMPAIGNS.last(tenant) == 29


async def test_the_numbers_at_a_rank_skip_the_gaps_across_chapters(app: FastAPI) -> None:
    tenant = Tenant.for_organization(ObjectId())
    beside = Tenant.for_organization(ObjectId())
    total = 2 * CHAPTER + 345
    assert await slots.CAMPAIGNS.claim_run(tenant, total) == list(range(total))
    await slots.CAMPAIGNS.claim_run(beside, 50)
    await slots.CAMPAIGNS.record_gaps(beside, list(range(50)))  # not this organization's
    rng = random.Random(19)
    gaps = set(rng.sample(range(total), 400)) | {0, CHAPTER - 1, CHAPTER, total - 1}
    gaps |= set(range(CHAPTER + 100, 2 * CHAPTER - 100))  # a chapter nearly all deleted
    await slots.CAMPAIGNS.record_gaps(tenant, sorted(gaps))
    await slots.CAMPAIGNS.record_gaps(tenant, [CHAPTER, 0])  # again: harmless
    live = [n for n in reversed(range(total)) if n not in gaps]
    for skip, count in [(0, 20), (0, 1), (7, 100), (340, 20), (len(live) - 3, 20), (900, 300)]:
        assert await slots.CAMPAIGNS.newest(tenant, skip, count) == live[skip : skip + count]
    assert await slots.CAMPAIGNS.newest(tenant, len(live), 20) == []
    assert await slots.CAMPAIGNS.newest(beside, 0, 20) == []


async def test_schedule_buckets_are_walked_in_order_across_blocks(app: FastAPI) -> None:
    tenant = Tenant.for_organization(ObjectId())
    beside = Tenant.for_organization(ObjectId())
    used = [buckets.UNDATED + 3, buckets.UNDATED, 5, 63, 64, 200, 20_000, 20_001]
    await buckets.register(tenant, used[:4])
    await buckets.register(tenant, used[2:])  # again, and more: a repeat is harmless
    await buckets.register(beside, [7, 130])
    assert [b async for b in buckets.walk(tenant, descending=False)] == sorted(used)
    assert [b async for b in buckets.walk(tenant, descending=True)] == sorted(used)[::-1]
    assert [b async for b in buckets.walk(tenant, descending=False, start=64)] == used[4:]
    assert [b async for b in buckets.walk(tenant, descending=True, start=63)] == [
        63,
        5,
        buckets.UNDATED + 3,
        buckets.UNDATED,
    ]
    assert [b async for b in buckets.walk(beside, descending=False, start=8)] == [130]
