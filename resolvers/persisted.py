"""Automatic persisted queries, as Apollo's persisted-queries link speaks them.

The link first sends only `extensions.persistedQuery.sha256Hash`. An unknown hash is answered
with `PERSISTED_QUERY_NOT_FOUND`, and the link sends the query with its hash; the query is
stored once the hash checks out, and later hash-only requests (POST or GET, which CDNs can
cache) run it. The store is a bounded LRU of query text only — never variables or results —
so one shared store serves every tenant safely.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

from graphql import GraphQLError
from strawberry.http import GraphQLRequestData

HASH = re.compile(r"[0-9a-f]{64}")


class PersistedQueries:
    """Query text by SHA-256, least recently used first out."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._queries: OrderedDict[str, str] = OrderedDict()

    def resolve(self, request: GraphQLRequestData) -> GraphQLError | None:
        """Fills in `request.query` from its hash, or stores it; returns a refusal, if any."""
        persisted = (request.extensions or {}).get("persistedQuery")
        if persisted is None:
            return None
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if (
            persisted.get("version", 1) != 1
            or not isinstance(digest, str)
            or not HASH.fullmatch(digest)
        ):
            return _refusal("Unsupported persisted query: send version 1 and a sha256Hash")
        if request.query is None:
            query = self._queries.get(digest)
            if query is None:
                return GraphQLError(
                    "PersistedQueryNotFound", extensions={"code": "PERSISTED_QUERY_NOT_FOUND"}
                )
            self._queries.move_to_end(digest)
            request.query = query
            return None
        if hashlib.sha256(request.query.encode()).hexdigest() != digest:
            return _refusal("provided sha does not match query")
        self._queries[digest] = request.query
        self._queries.move_to_end(digest)
        while len(self._queries) > self.max_size:
            self._queries.popitem(last=False)
        return None

    def __len__(self) -> int:
        return len(self._queries)


def _refusal(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})
