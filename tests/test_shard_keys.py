"""Sharding, checked from what the code declares and sends (MongoDB cannot run here).

Each model names the key its collection is sharded on (`Settings.shard_key`, None: unsharded);
docs/database.md#shard-keys must name the same. On a sharded collection MongoDB refuses a
unique index that does not start with the shard key, and only such an index stays unique
cluster-wide, which the unique inserts that decide races here rely on. A query without the
key's first field by equality goes to every shard; the few that must are listed with why.
"""

from __future__ import annotations

import re

import pytest

from tests.index_gate import QueryRecorder, declared_indexes, shard_keys, untargeted_queries
from tests.support import ROOT

DOC = ROOT / "docs" / "database.md"


def documented_shard_keys() -> dict[str, tuple[str, ...] | None]:
    """The table of docs/database.md#shard-keys: collections, then `{fields}` or unsharded."""
    section = DOC.read_text(encoding="utf-8").split("\n## Shard keys\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows: dict[str, tuple[str, ...] | None] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        collections, key = (cell.strip() for cell in line.strip("|").split("|")[:2])
        fields: tuple[str, ...] | None = None
        if key != "unsharded":
            match = re.fullmatch(r"`\{([^}]*)\}`", key)
            assert match, f"not a shard key: {key!r}"
            fields = tuple(field.strip() for field in match.group(1).split(","))
        for name in re.findall(r"`([a-z_]+)`", collections):
            assert name not in rows, f"{name} is in the table twice"
            rows[name] = fields
    return rows


def test_the_documented_shard_keys_are_the_declared_ones() -> None:
    assert documented_shard_keys() == shard_keys()


def test_every_shard_key_starts_with_the_organization() -> None:
    """So that an organization's documents are a range of chunks its queries target."""
    keys = {name: key for name, key in shard_keys().items() if key is not None}
    assert len(keys) >= 20
    assert {name for name, key in keys.items() if key[0] != "organizationId"} == set()


def test_every_unique_index_of_a_sharded_collection_starts_with_its_shard_key() -> None:
    keys = shard_keys()
    checked = 0
    wrong: list[str] = []
    for collection, indexes in declared_indexes().items():
        key = keys[collection]
        if key is None:
            continue
        for index in indexes:
            if not index.unique or index.keys == ("_id",):
                continue  # `_id` is unique per shard only; docs/database.md says why it holds
            checked += 1
            if index.keys[: len(key)] != key:
                wrong.append(f"{collection}: unique {index.keys} under shard key {key}")
    assert wrong == []
    assert checked >= 7


@pytest.mark.after_all
def test_every_query_on_a_sharded_collection_names_the_organization(
    recorded_queries: QueryRecorder,
) -> None:
    """Runs after the rest of the suite and judges every query the app sent."""
    untargeted = untargeted_queries(recorded_queries.shapes)
    assert untargeted == [], "\n".join(untargeted)
