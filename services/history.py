"""Changing a stored campaign or contact without two writers on one document.

Every change is numbered. A writer reads the document at version `v`, decides what to write,
and claims version `v + 1` by inserting a `Change` record; the unique index lets exactly one
of several racing writers insert it (on FerretDB as on MongoDB: FerretDB does not make a
conditional update atomic, so a version check in the update filter alone would let two win).
The winner then writes the document. A loser re-reads and either tries again (an edit of other
fields) or is refused (a status change asked of a status the document no longer has).

If a winner dies between its claim and its write, the document stays at `v` with `v + 1`
claimed. The next writer that loses to that claim and finds it older than `STALE_AFTER`
finishes it from the record (`applied`), so a crash delays changes but never blocks them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from beanie import PydanticObjectId
from pymongo.errors import DuplicateKeyError, OperationFailure

from core.errors import NotFound
from models import Change
from models.base import TenantDocument
from models.campaign import CreatedBy
from services.tenancy import Tenant

STALE_AFTER = timedelta(seconds=10)
MAX_ATTEMPTS = 8

Doc = TypeVar("Doc", bound=TenantDocument)


@dataclass
class Planned:
    """What one change writes: top-level fields of the document, and the status move if any."""

    action: str
    applied: dict[str, Any] = field(default_factory=dict)
    from_status: str | None = None
    to_status: str | None = None

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
AfterClaim = Callable[[Doc, Planned], Awaitable[None]]
"""Work that must happen only if this change won, before the document is written."""


async def change(
    tenant: Tenant,
    model: type[Doc],
    document_id: str | PydanticObjectId,
    plan: Plan[Doc],
    *,
    what: str,
    after_claim: AfterClaim[Doc] | None = None,
) -> tuple[Doc, Planned]:
    """Applies the change `plan` decides to the current document; returns it as written.

    A lost race to a change that moved the status raises `LostToStatusChange` when this change
    moves the status too (it was decided for a status that no longer holds); any other lost
    race re-reads and plans again. `after_claim` runs between claim and write, for work that
    must happen only if this change wins (adding recipients, say).
    """
    for _ in range(MAX_ATTEMPTS):
        current = await tenant.get(model, document_id)
        if current is None:
            raise NotFound(what)
        planned = await plan(current)
        if not planned.applied and not planned.moves_status:
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
            by=_caller(tenant),
        )
        try:
            await tenant.insert(claim)
        except DuplicateKeyError:
            winner = await _winner(tenant, model, current, version + 1)
            moved = winner is not None and winner.fromStatus != winner.toStatus
            if moved and planned.moves_status:
                assert winner is not None
                raise LostToStatusChange(str(winner.toStatus)) from None
            continue
        try:
            if after_claim is not None:
                await after_claim(current, planned)
            await _write(tenant, model, _id(current), version, planned.applied)
        except (DuplicateKeyError, OperationFailure):
            # The write itself was refused (a unique field taken meanwhile): free the version.
            await tenant.delete_many(Change, {"_id": claim.id})
            raise
        written = {**current.model_dump(), **planned.applied, "version": version + 1}
        return model.model_validate(written), planned
    raise RuntimeError(f"{what} {document_id} kept changing; gave up after {MAX_ATTEMPTS} tries")


async def history(tenant: Tenant, subject_id: PydanticObjectId) -> list[Change]:
    """Returns a document's changes, oldest first."""
    return await tenant.find(Change, {"subjectId": subject_id}).sort("version").to_list()


async def forget(tenant: Tenant, subject_id: PydanticObjectId) -> None:
    """Deletes a deleted document's change records."""
    await tenant.delete_many(Change, {"subjectId": subject_id})


async def _write(
    tenant: Tenant,
    model: type[Doc],
    document_id: PydanticObjectId,
    version: int,
    applied: dict[str, Any],
) -> None:
    update = {**applied, "version": version + 1, "updatedAt": tenant.now()}
    # Documents stored before versions existed have no `version`: they are version 0.
    current = version if version else {"$in": [0, None]}
    await tenant.update_one(model, {"_id": document_id, "version": current}, {"$set": update})


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
                await _write(tenant, model, subject, version - 1, winner.applied)
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
