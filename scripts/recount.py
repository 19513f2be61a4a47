"""Puts organizations' running totals right: contacts, campaigns and the campaigns of each
status, suppressed numbers, conversations (`services/storage/tallies.py`).

    python -m scripts.recount --org ID     # one organization
    python -m scripts.recount --all        # every organization that holds or counts anything

A total is kept by the writers, so it drifts only when a process died between a write and the
entry that counts it, or when a process of an older version wrote during a rollout. Each total
is counted once (reading what it counts) and corrected by one entry; a repeat changes nothing.
It is exact while nothing writes to that organization. Against `MONGODB_URI`/`MONGODB_DB`;
`make run`'s embedded database: `make recount ARGS="--org ID"`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bson import ObjectId

from core.config import Settings, get_settings
from models import ConversationSummary, Suppression, Tally
from scripts.operator import on_database, organization_id
from services.storage import migrations, tallies
from services.storage.tenancy import Tenant


async def recount(organizations: list[ObjectId] | None) -> dict[ObjectId, dict[str, int]]:
    """Recounts every total of `organizations` (None: all) on the database the models are
    bound to; returns each one's counts."""
    chosen = organizations if organizations is not None else await _every_organization()
    counted: dict[ObjectId, dict[str, int]] = {}
    for organization in chosen:
        tenant = Tenant.for_organization(organization)
        counted[organization] = {
            kind: await tallies.recount(tenant, kind) for kind in tallies.COUNTED
        }
    return counted


async def _every_organization() -> list[ObjectId]:
    """Every organization with something counted or a total kept: one read of each collection's
    organization ids (an organization may hold only suppressed numbers, or only totals that
    drifted after its contacts and campaigns were deleted)."""
    found = set(await migrations.organizations())
    for model in (Suppression, ConversationSummary, Tally):
        found.update(await model.get_pymongo_collection().distinct("organizationId"))
    return sorted(found)


async def run(
    settings: Settings, organizations: list[ObjectId] | None
) -> dict[ObjectId, dict[str, int]]:
    """`recount` against the configured database."""
    return await on_database(settings, lambda: recount(organizations))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.recount",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--org", help="the organization's id (24 hex digits)")
    which.add_argument("--all", action="store_true", help="every organization")
    args = parser.parse_args(argv)
    organizations: list[ObjectId] | None = None
    if args.org is not None:
        organization = organization_id(args.org)
        if organization is None:
            return 2
        organizations = [organization]
    counted = asyncio.run(run(get_settings(), organizations))
    for organization, totals in counted.items():
        shown = ", ".join(f"{kind} {n}" for kind, n in totals.items() if n)
        print(f"{organization}: {shown or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
