"""Numbered changes of a document: who changed what, when, and from which status to which."""

from __future__ import annotations

from typing import Any

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument
from models.campaign import CreatedBy


class Change(TenantDocument):
    """Change number `version` of one document (a campaign or a contact).

    The unique `(organizationId, subjectId, version)` index is what makes a change safe: of
    two writers that read the same version, exactly one can insert the next one — on MongoDB
    and on FerretDB, which does not make a conditional update atomic. Only that writer then
    modifies the document. `applied` holds the fields written, so a change whose writer died
    between the two steps can be finished by the next one.
    """

    subjectId: PydanticObjectId
    version: int
    action: str
    fromStatus: str | None = None
    toStatus: str | None = None
    applied: dict[str, Any] = {}
    work: dict[str, Any] = {}
    """Other documents to change first, recorded so the change can be finished by anyone."""
    by: CreatedBy | None = None
    step: int | None = None
    """The follow-up step a `followUpStarted` / `followUpEnded` change is about."""

    class Settings:
        name = "changes"
        shard_key = ("organizationId", "subjectId")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("subjectId", pymongo.ASCENDING),
                    ("version", pymongo.ASCENDING),
                ],
                name="org_subject_version_unique",
                unique=True,
            ),
        ]
