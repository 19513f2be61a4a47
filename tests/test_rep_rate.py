"""A rep's one-to-one message counts within its organization's rate but never waits behind
campaign batches: it takes a unit of the second kept for reps before a campaign lane can.

Time is a clock the test moves (rate slots are seconds of that clock), so a "second" here is
one step of the test, never a wall-clock measurement.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from models import SendSlot
from models.base import utcnow
from services.conversations import outbound
from services.conversations.threads import ThreadMessage
from services.organizations.settings import set_rate_per_second
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from services.sending.rate_slots import RateSlots, RepMeter, layout, slot_sizes
from services.storage.tenancy import Tenant
from tests.support import ANY_HOUR, FAST, Clock, Org, make_contact, principal

RATE = 10
REP_PHONE = "+13125550100"


@pytest.mark.parametrize(
    ("rate", "chunks", "units", "claims"),
    [
        (1, [], 1, [1]),
        (5, [4], 1, [5]),
        (10, [9], 1, [10]),
        (45, [20, 20, 1], 4, [20, 20, 5]),
        (100, [20, 20, 20, 20, 10], 10, [20, 20, 20, 20, 20]),
        (200, [20] * 9, 20, [20] * 9 + [20]),
    ],
)
def test_a_second_keeps_units_for_reps_and_campaigns_take_them_with_their_last_slot(
    rate: int, chunks: list[int], units: int, claims: list[int]
) -> None:
    second = layout(rate, 20)
    assert (second.chunks, second.units) == (chunks, units)
    assert slot_sizes(rate, 20) == claims and sum(claims) == rate


async def test_a_reps_message_goes_out_within_the_second_while_a_campaign_runs_at_the_limit(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    campaign = await org.create(1000)
    await set_rate_per_second(org.tenant(), RATE)
    contact = await make_contact(org.id, REP_PHONE, firstName="Ann")
    rep = Tenant(principal(org.id, org.user))
    clock = Clock(utcnow().replace(microsecond=0))
    ledger = tmp_path / "l.jsonl"
    provider = SimulatedProvider(ledger)
    dispatcher = Dispatcher(provider, replace(FAST, rate_per_second=RATE, clock=clock))
    meter = RepMeter(RateSlots(clock, FAST.chunk), default_rate=RATE)
    await org.mutate("sendCampaignNow", campaign)

    def send(key: str) -> asyncio.Task[ThreadMessage]:
        return asyncio.create_task(
            outbound.send_message(
                rep,
                outbound.Outgoing(str(contact.id), "Hi {{firstName}}", key),
                provider=provider,
                settings=settings,
                defaults=ANY_HOUR,
                meter=meter,
            )
        )

    def second_of_clock() -> int:
        return int(clock().timestamp())

    async def held(second: int) -> int:
        rows = await org.tenant().raw_find(SendSlot, {"second": second}).to_list()
        return sum(1 for row in rows if row["slot"] >= len(layout(RATE, FAST.chunk).chunks))

    def rep_entries() -> list[dict[str, str]]:
        return [e for e in read_ledger(ledger) if e["to"] == REP_PHONE]

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        """Waits for something the tasks do on their own (no time is measured)."""
        for _ in range(3000):
            if await check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("it never happened")

    async def holding(second: int) -> bool:
        return await held(second) > 0

    async def reps_out(count: int) -> None:
        """Waits until `count` reps' messages are in the ledger (they go out on their own)."""

        async def out() -> bool:
            return len(rep_entries()) >= count

        await until(out)

    per_second: list[Counter[str]] = []
    mark = 0
    waiting: list[asyncio.Task[ThreadMessage]] = []
    for step in range(10):
        if step == 3:
            # Sent at the start of a second: it goes at once, the campaign gets the rest.
            await send("start")
        if step == 4:
            # Three at once: one a second, each holding its own; none waits for a batch.
            waiting = [send(f"burst-{i}") for i in range(3)]
            await until(lambda: holding(second_of_clock() + 2))
        together = send("together") if step == 8 else None
        await dispatcher.tick()
        if step == 1:
            # Sent once the campaign used the second up: it holds the next second's unit and
            # goes out when that second starts, before the campaign's next turn.
            late = send("late")
            await until(lambda: holding(second_of_clock() + 1))
            assert not late.done() and rep_entries() == []
        entries = read_ledger(ledger)[mark:]
        mark += len(entries)
        per_second.append(Counter("rep" if e["to"] == REP_PHONE else "campaign" for e in entries))
        clock.advance(timedelta(seconds=1))
        if step == 1:
            await late
        if step in (4, 5):
            await reps_out(len(rep_entries()) + 1)  # the burst's next, in the second it holds
        if together is not None:
            await together
    for message in await asyncio.gather(*waiting):
        assert message.status == "sent"

    totals = [sum(second.values()) for second in per_second]
    reps = [second["rep"] for second in per_second]
    # The organization's total stays within its limit in every second, the campaign at it.
    assert all(RATE * 0.8 <= total <= RATE for total in totals[:9]), per_second
    assert max(totals) <= RATE, per_second
    # Each rep's message went out in the second it was sent or the one after.
    assert reps[:8] == [0, 0, 1, 1, 1, 1, 1, 0], per_second
    assert reps[8] + reps[9] == 1, per_second  # with the campaign's turn: this second or next
    keys = Counter(str(e["key"]) for e in rep_entries())
    assert len(keys) == 6 and set(keys.values()) == {1}
    assert (await org.campaign(campaign))["status"] == "sending"
