"""Running totals per organization (contacts, campaigns, suppressed numbers): `totalCount`
without a count.

A count on FerretDB decodes every row it counts, so an unfiltered `totalCount` grew with the
organization (docs/performance.md#counts). The write paths that create or delete contacts and
campaigns record their change instead, and a total is read from a few small documents.

Every change is an entry of its own (a `Tally`), inserted and never changed: FerretDB runs
`$inc` and conditional updates as read, change in Go, write back, so two writers of one
document lose a change (docs/database.md), and here no document has two writers.

Entries are folded so that a total stays a few documents whatever the number of changes and of
processes that made them. A fold is a new document: the previous fold's total plus its
entries', and the list of the entries it absorbed, which readers then skip. Its `_id` is the
next fold number, so of two folds at once one is inserted and the other gives up; a number is
never claimed twice, since old folds are retired (moved out of the readers' range), not
deleted. Entries absorbed by a fold are deleted before that fold is retired, and readers read
the folds before the entries: an entry is never counted both in a fold and on its own, and
never missed.

A change is recorded after the write it counts: a process that dies between the two leaves its
total short by that write. `recount` puts an organization right (the start-up migration that
introduced totals ran it for every organization; an operator can run it again).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import Campaign, Contact, ConversationSummary, Suppression, Tally
from models.base import TenantDocument
from models.campaign import CampaignStatus
from services.storage.tenancy import DUPLICATE_KEY, Tenant

CONTACTS: Final = "contacts"
CAMPAIGNS: Final = "campaigns"
SUPPRESSIONS: Final = "suppressions"
CONVERSATIONS: Final = "conversations"


def campaigns_in(status: str) -> str:
    """The total of the organization's campaigns in `status` (what a status filter's
    `totalCount` and the REST list's `pagination.total` read)."""
    return f"{CAMPAIGNS}:status:{status}"


COUNTED: dict[str, tuple[type[TenantDocument], Mapping[str, Any]]] = {
    CONTACTS: (Contact, {}),
    CAMPAIGNS: (Campaign, {}),
    SUPPRESSIONS: (Suppression, {}),
    CONVERSATIONS: (ConversationSummary, {}),
    **{campaigns_in(s.value): (Campaign, {"status": s.value}) for s in CampaignStatus},
}
"""Each total, with the documents it counts (what `recount` counts)."""
STATUS_COUNTED: dict[type[TenantDocument], Callable[[str], str]] = {Campaign: campaigns_in}
"""Models with a total per status, kept by `moved` on every status change."""
RECOUNT_WRITER: Final = "recount"
"""The writer of the corrections `recount` records."""
FOLD_AT = 32
"""Changes a process records for a total between its folds of that total's entries."""
FOLD_MOST = 1000
"""Entries one fold absorbs at most (its list is one document)."""
KEPT_FOLDS = 2
"""Folds left in the readers' range: the newest, and the one before it for a reader that read
the folds just before the newest was inserted."""


_recorded: dict[tuple[ObjectId, str], int] = {}
"""Changes this process recorded per total since it last folded it (one small entry per
organization that it wrote for)."""


def _writer() -> str:
    """This event loop's name as a writer (for whoever reads the entries)."""
    loop = asyncio.get_running_loop()
    return f"{socket.gethostname()}:{os.getpid()}:{id(loop):x}"


def _folds_of(kind: str) -> str:
    return f"{kind}:fold"


def _retired(kind: str) -> str:
    return f"{kind}:retired"


async def add(tenant: Tenant, kind: str, delta: int) -> None:
    """Adds `delta` (negative for deletions) to the organization's total of `kind`."""
    if kind not in COUNTED:
        raise ValueError(f"no running total of {kind!r}")
    if not delta:
        return
    await _record(tenant, kind, delta, _writer())
    await _noted(tenant, kind)


async def _noted(tenant: Tenant, kind: str) -> None:
    """Every FOLD_AT-th change this process records for a total, it folds that total's
    entries (everyone's, a dead process's too): reads never write, and what they read stays
    short."""
    key = (tenant.organization_id, kind)
    recorded = _recorded.pop(key, 0) + 1
    if recorded < FOLD_AT:
        _recorded[key] = recorded
    else:
        await fold(tenant, kind, at=1)


async def moved(
    tenant: Tenant,
    model: type[TenantDocument],
    from_status: str | None,
    to_status: str | None,
    *,
    change: object = None,
) -> None:
    """Moves one document of `model` from one status's total to another's: `from_status` None
    for a creation, `to_status` None for a deletion (a status without a total is skipped).

    `change` names the status change (its `Change` record) when several writers may record
    it: its entries then have ids of their own, so of writers finishing one change at once
    (FerretDB lets each see its write match) one entry each lands and the rest are refused.
    """
    kind_of = STATUS_COUNTED.get(model)
    if kind_of is None:
        return
    entries = []
    for status, delta, side in ((from_status, -1, "out"), (to_status, 1, "in")):
        if status is None or (kind := kind_of(status)) not in COUNTED:
            continue
        name = f"change:{change}:{side}" if change is not None else str(ObjectId())
        entry = {"_id": f"{tenant.organization_id}:{kind}:{name}", "kind": kind, "n": delta}
        entries.append({**entry, "writer": _writer()})
    if not entries:
        return
    try:
        await tenant.raw_insert_many(Tally, entries, ordered=False)
        landed = entries
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        refused = {int(error["index"]) for error in errors}
        landed = [entry for i, entry in enumerate(entries) if i not in refused]
    for entry in landed:
        await _noted(tenant, str(entry["kind"]))


async def _record(tenant: Tenant, kind: str, delta: int, writer: str) -> None:
    entry = {
        "_id": f"{tenant.organization_id}:{kind}:{ObjectId()}",
        "kind": kind,
        "writer": writer,
        "n": delta,
    }
    await tenant.raw_insert_many(Tally, [entry], ordered=True)


@dataclass(frozen=True)
class _State:
    """What a reader saw: the folds (oldest first), then the entries no fold absorbed."""

    folds: Sequence[Mapping[str, Any]]
    loose: Sequence[Mapping[str, Any]]

    @property
    def total(self) -> int:
        base = int(self.folds[-1]["n"]) if self.folds else 0
        return base + sum(int(entry.get("n", 0)) for entry in self.loose)


async def _read(tenant: Tenant, kind: str) -> _State:
    """The folds first, then the entries (see the module's docstring for why in that order)."""
    fields = {"n": 1, "fold": 1, "absorbed": 1}
    folds = await tenant.raw_find(Tally, {"kind": _folds_of(kind)}, fields).to_list()
    folds.sort(key=lambda fold: int(fold["fold"]))
    absorbed = {entry_id for fold in folds for entry_id in fold.get("absorbed") or ()}
    entries = await tenant.raw_find(Tally, {"kind": kind}, {"n": 1}).to_list()
    return _State(folds, [entry for entry in entries if entry["_id"] not in absorbed])


async def total(tenant: Tenant, kind: str) -> int:
    """Returns the organization's total of `kind`."""
    return (await _read(tenant, kind)).total


async def fold(tenant: Tenant, kind: str, *, at: int = FOLD_AT, retire: bool = True) -> bool:
    """Folds the organization's entries of `kind` when at least `at` are outside any fold;
    returns whether this call's fold was the one inserted. `retire=False` leaves the older
    folds and their entries in place, as a folder that died after its insert does."""
    state = await _read(tenant, kind)
    if len(state.loose) < max(at, 1):
        return False
    return await _fold(tenant, kind, state, retire=retire)


async def _fold(tenant: Tenant, kind: str, state: _State, *, retire: bool = True) -> bool:
    taken = list(state.loose[:FOLD_MOST])
    latest = state.folds[-1] if state.folds else None
    number = int(latest["fold"]) + 1 if latest else 1
    base = int(latest["n"]) if latest else 0
    document = Tally(
        id=f"{tenant.organization_id}:{kind}:fold:{number}",
        organizationId=tenant.organization_id,
        kind=_folds_of(kind),
        writer=_writer(),
        fold=number,
        n=base + sum(int(entry.get("n", 0)) for entry in taken),
        absorbed=[entry["_id"] for entry in taken],
    )
    try:
        await tenant.insert(document)
    except DuplicateKeyError:
        return False  # another fold took this number; what it left is folded next time
    if retire:
        for old in state.folds[: max(0, len(state.folds) + 1 - KEPT_FOLDS)]:
            # Its entries go first: while it is in the readers' range they skip them.
            await tenant.delete_in(Tally, "_id", list(old.get("absorbed") or ()))
            await tenant.update_one(
                Tally, {"_id": old["_id"]}, {"$set": {"kind": _retired(kind), "absorbed": []}}
            )
    return True


async def recount(tenant: Tenant, kind: str) -> int:
    """Counts the organization's documents of `kind` (reading them all, once) and records the
    correction that makes the total equal the count; returns the count.

    Exact when nothing creates or deletes them meanwhile (at start-up, before serving);
    running it again changes nothing.
    """
    model, query = COUNTED[kind]
    counted = await tenant.count(model, query)
    correction = counted - (await _read(tenant, kind)).total
    if correction:
        await _record(tenant, kind, correction, RECOUNT_WRITER)
    return counted
