"""Writes `schema.graphql`, or with `--check` fails when it differs from the code.

The committed SDL is what frontend clients generate types from; a change to it should be a
visible diff in review, never a surprise.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from resolvers.root import schema

TARGET = Path(__file__).resolve().parent.parent / "schema.graphql"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.export_schema")
    parser.add_argument("--check", action="store_true", help="fail if schema.graphql is stale")
    args = parser.parse_args(argv)
    current = schema.as_str() + "\n"
    if not args.check:
        TARGET.write_text(current)
        return 0
    committed = TARGET.read_text() if TARGET.exists() else ""
    if committed == current:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            "schema.graphql (committed)",
            "schema.graphql (from code)",
        )
    )
    print("schema.graphql is stale: run `make schema` and commit it", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
