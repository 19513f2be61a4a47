"""Sets an organization's own sending rate (messages a second), an operator's setting.

    python -m scripts.org_rate --org ID --rate 20        # this organization: 20 a second
    python -m scripts.org_rate --org ID --rate default   # back to DISPATCH_RATE_PER_SECOND

A plan's or a provider account's throughput is the operator's to decide, not the organization
admins', so it is a command against the database (`MONGODB_URI`, `MONGODB_DB`) rather than an
API field. `make run`'s embedded database: `make org-rate ARGS="--org ID --rate 20"`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bson import ObjectId

from core.config import Settings, get_settings
from core.errors import InvalidInput
from scripts.operator import on_database, organization_id
from services.organizations.settings import set_rate_per_second
from services.storage.tenancy import Tenant


async def apply(settings: Settings, organization: ObjectId, rate: int | None) -> None:
    """Stores `rate` (None: the deployment's) as the organization's own."""
    tenant = Tenant.for_organization(organization)
    await on_database(settings, lambda: set_rate_per_second(tenant, rate))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.org_rate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--org", required=True, help="the organization's id (24 hex digits)")
    parser.add_argument("--rate", required=True, help="messages a second, or 'default'")
    args = parser.parse_args(argv)
    organization = organization_id(args.org)
    if organization is None:
        return 2
    rate: int | None = None
    if args.rate != "default":
        if not args.rate.isdigit() or int(args.rate) < 1:
            print("--rate: a whole number of at least 1, or 'default'", file=sys.stderr)
            return 2
        rate = int(args.rate)
    try:
        asyncio.run(apply(get_settings(), organization, rate))
    except InvalidInput as exc:
        print("; ".join(e.message for e in exc.errors), file=sys.stderr)
        return 2
    print(f"organization {organization}: {rate if rate else 'the deployment default'} a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
