"""Mints a development token, ready to paste into the GraphQL IDE's headers.

    python -m scripts.token [--org ID] [--user ID] [--name "Dev User"] [--roles rep,admin]

The default organization and user ids are fixed, so every token of a development machine sees
the same data. Refuses to run outside development: production tokens come from the identity
provider, not from here.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.auth import DEV_ORGANIZATION_ID, DEV_USER_ID, mint_token
from core.config import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--org", default=DEV_ORGANIZATION_ID)
    parser.add_argument("--user", default=DEV_USER_ID)
    parser.add_argument("--name", default="Alex Rep")
    parser.add_argument("--roles", default="rep,admin")
    parser.add_argument("--raw", action="store_true", help="print only the token")
    args = parser.parse_args(argv)
    settings = get_settings()
    if settings.environment not in ("development", "test"):
        print("refusing to mint a token outside development", file=sys.stderr)
        return 2
    token = mint_token(
        settings,
        user_id=args.user,
        organization_id=args.org,
        full_name=args.name,
        roles=[r for r in args.roles.split(",") if r],
    )
    if args.raw:
        print(token)
        return 0
    print(
        f"# organization {args.org}, user {args.user} ({args.name}); valid "
        f"{settings.dev_token_ttl_seconds // 3600} h",
        file=sys.stderr,
    )
    print("# paste into the IDE's Headers tab:", file=sys.stderr)
    print(json.dumps({"Authorization": f"Bearer {token}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
