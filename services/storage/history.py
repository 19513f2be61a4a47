"""Changing a stored campaign or contact without two writers on one document.

Every change is numbered. A writer reads the document at version `v`, decides what to write,
and claims version `v + 1` by inserting a `Change` record; the unique index lets exactly one
of several racing writers insert it (on FerretDB as on MongoDB: FerretDB does not make a
conditional update atomic, so a version check in the update filter alone would let two win).
The winner then writes the document. A loser re-reads and either tries again (an edit of other
fields) or is refused (a status change asked of a status the document no longer has).

If a winner dies between its claim and its write, the document stays at `v` with `v + 1`
claimed. The next writer that loses to that claim and finds it older than `STALE_AFTER`
finishes it from the record: the fields (`applied`) and the work on other documents (`work`:
recipients to insert or delete) are recorded with the claim and redone idempotently, so a
writer that was only slow and the one finishing for it write the same things.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from beanie import PydanticObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from core.errors import Conflict, FieldError, NotFound
from models import Change, Recipient, StepSend
from models.base import TenantDocument
from models.campaign import CreatedBy
from services.storage import tallies
from services.storage.tenancy import DUPLICATE_KEY, Tenant

logger = logging.getLogger(__name__)
STALE_AFTER = timedelta(seconds=30)
"""A claim this old whose document was not written is finished by the next writer."""
GIVE_UP_AFTER = timedelta(seconds=10)
RESET = {
    "status": "pending",
    "errorCode": None,
    "error": None,
    "deliveryStatus": None,
    "deliveryRank": 0,
    "deliveryErrorCode": None,
    "leaseEpoch": None,
    "providerMessageId": None,
    "sentAt": None,
}
"""A recipient's sending fields as before it was first sent (a retry's reset): a report about
the new message that arrives before its outcome is written is then not taken for one about
the old message."""

Doc = TypeVar("Doc", bound=TenantDocument)


@dataclass
class Planned:
    """What one change writes: top-level fields of the document, and the status move if any.

    `work` is what must happen to other documents before the write (recipients to insert or
    delete). It is recorded with the claim and done idempotently, so whoever finishes a change
    (its writer, or the next writer after that one died) does exactly the same thing.
    """

    action: str
    applied: dict[str, Any] = field(default_factory=dict)
    from_status: str | None = None
    to_status: str | None = None
    work: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    """The follow-up step the change is about, if any (shown in the history)."""

    @property
    def moves_status(self) -> bool:
        return self.from_status != self.to_status


class LostToStatusChange(Exception):
    """Another writer changed the status first; `status` is the status it moved to."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


Plan = Callable[[Doc], Awaitable[Planned]]
"""Decides the change from the current document; raises a `ServiceError` to refuse it."""


async def change(
    tenant: Tenant,
    model: type[Doc],
    document_id: str | PydanticObjectId,
    plan: Plan[Doc],
    *,
    what: str,
) -> tuple[Doc, Planned]:
    """Applies the change `plan` decides to the current document; returns it as written.

    A lost race to a change that moved the status raises `LostToStatusChange` when this change
    moves the status too (it was decided for a status that no longer holds); any other lost
    race waits a little (the winner is writing) and plans again on the new version. A document
    that keeps changing for `GIVE_UP_AFTER` is a `Conflict` the caller may retry.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GIVE_UP_AFTER.total_seconds()
    delay = 0.01
    while True:
        current = await tenant.get(model, document_id)
        if current is None:
            raise NotFound(what)
        planned = await plan(current)
        if not planned.applied and not planned.moves_status and not planned.work:
            return current, planned  # nothing to change: no claim, no write
        version = _version(current)
        claim = Change(
            organizationId=tenant.organization_id,
            subjectId=_id(current),
            version=version + 1,
            action=planned.action,
            fromStatus=planned.from_status,
            toStatus=planned.to_status,
            applied=planned.applied,
            work=planned.work,
            by=_caller(tenant),
            step=planned.step,
        )
        try:
            await tenant.insert(claim)
        except DuplicateKeyError:
            winner = await _winner(tenant, model, current, version + 1)
            moved = winner is not None and winner.fromStatus != winner.toStatus
            if moved and planned.moves_status:
                assert winner is not None
                raise LostToStatusChange(str(winner.toStatus)) from None
            if loop.time() > deadline:
                raise Conflict(
                    f"This {what} is being changed by other requests; try again",
                    [FieldError(("id",), "BUSY", "Changed concurrently; retry the request")],
                ) from None
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
            continue
        now = tenant.now()
        try:
            await _finish(tenant, model, claim, now)
        except (DuplicateKeyError, OperationFailure):
            # The write itself was refused (a unique field taken meanwhile): free the version.
            await tenant.delete_many(Change, {"_id": claim.id})
            raise
        written = {**current.model_dump(), **planned.applied, "version": version + 1}
        return model.model_validate({**written, "updatedAt": now}), planned


async def history(tenant: Tenant, subject_id: PydanticObjectId) -> list[Change]:
    """Returns a document's changes, oldest first."""
    return await tenant.find(Change, {"subjectId": subject_id}).sort("version").to_list()


async def forget(tenant: Tenant, subject_id: PydanticObjectId) -> None:
    """Deletes a deleted document's change records."""
    await tenant.delete_many(Change, {"subjectId": subject_id})


async def _finish(tenant: Tenant, model: type[Doc], claim: Change, now: datetime) -> None:
    """Does a claimed change: its recorded work, then the document write. Idempotent, so a
    writer that was only slow and the one finishing for it do no harm to each other."""
    work = claim.work
    if rows := work.get("insertRecipients"):
        try:
            await tenant.raw_insert_many(Recipient, [dict(r) for r in rows], ordered=False)
        except BulkWriteError as exc:  # rows an earlier attempt already inserted
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
    if ids := work.get("deletePendingRecipients"):  # not ones a sender picked up meanwhile
        await tenant.delete_in(Recipient, "_id", ids, where={"status": "pending"})
    for group in work.get("resetRecipients") or []:
        # A retry: these failed recipients are pending again, under their new round; only
        # rows still as the change found them (failed, or sent and undelivered), so redoing
        # it after the round began changes nothing.
        await tenant.update_many(
            Recipient,
            {
                "campaignId": group["campaignId"],
                "batch": group["batch"],
                "_id": {"$in": group["ids"]},
                "retryRound": {"$ne": group["round"]},
            },
            {"$set": {**RESET, "retryRound": group["round"]}},
        )
    if campaign_id := work.get("deleteRecipientsOf"):
        await tenant.delete_many(Recipient, {"campaignId": campaign_id})
        await tenant.delete_many(StepSend, {"campaignId": campaign_id})
    update = {**claim.applied, "version": claim.version, "updatedAt": now}
    # Documents stored before versions existed have no `version`: they are version 0.
    before = claim.version - 1
    current = before if before else {"$in": [0, None]}
    matched = await tenant.update_one(
        model, {"_id": claim.subjectId, "version": current}, {"$set": update}
    )
    to_status = claim.applied.get("status")
    if matched and to_status is not None and to_status != claim.fromStatus:
        # Only a write that matched counts the move, once per change however many writers
        # finish it at once. The change is written: a failed count is a recount's to mend,
        # not the caller's error.
        try:
            await tallies.moved(tenant, model, claim.fromStatus, to_status, change=claim.id)
        except PyMongoError:
            logger.warning("status totals missed change %s; recount to mend", claim.id)
    if not matched and await tenant.get(model, claim.subjectId) is None:
        await tenant.delete_many(Change, {"subjectId": claim.subjectId})
        raise NotFound(model.__name__.lower())


async def _winner(tenant: Tenant, model: type[Doc], current: Doc, version: int) -> Change | None:
    """Returns the change that took `version`, finishing it if its writer died."""
    subject = _id(current)
    winner = await tenant.find(Change, {"subjectId": subject, "version": version}).first_or_none()
    if winner is None:
        return None
    if winner.createdAt < tenant.now() - STALE_AFTER:
        stored = await tenant.get(model, subject)
        if stored is not None and _version(stored) == version - 1:
            try:
                await _finish(tenant, model, winner, tenant.now())
            except (DuplicateKeyError, OperationFailure):
                await tenant.delete_many(Change, {"_id": winner.id})
                return None
    return winner


def _caller(tenant: Tenant) -> CreatedBy | None:
    try:
        principal = tenant.principal
    except RuntimeError:
        return None  # background work acts as nobody
    return CreatedBy(id=PydanticObjectId(principal.user_id), fullName=principal.full_name)


def _id(document: TenantDocument) -> PydanticObjectId:
    assert document.id is not None
    return document.id


def _version(document: TenantDocument) -> int:
    version = getattr(document, "version", 0)
    assert isinstance(version, int)
    return version
