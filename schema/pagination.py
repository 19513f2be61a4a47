"""Relay-style connections: `edges { cursor node }`, `pageInfo`, and a `totalCount` that is
only counted when asked for (counting is the expensive part of a page)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from services.storage.pages import Page

T = TypeVar("T")


@strawberry.type(description="Where this page ends and whether another follows.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when `after: endCursor` has more.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


def _edge_cursor(root: Edge[Any]) -> str:
    # Signed here, when asked for: most clients read only `pageInfo.endCursor`.
    return root.cursors[root.index]


@strawberry.type(description="One item of a page, with the cursor that resumes after it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(resolver=_edge_cursor, description="Opaque; pass as `after`.")
    node: T = strawberry.field(description="The item.")
    cursors: strawberry.Private[Sequence[str]]
    index: strawberry.Private[int]


@strawberry.type(description="A page of items.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items, in order.")
    page_info: PageInfo = strawberry.field(description="How to get the next page.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match in all (one count query, when asked).")
    async def total_count(self) -> int:
        return await self.count()

    @classmethod
    def of(
        cls, page: Page[Any], to_node: Callable[[Any], Any], count: Callable[[], Awaitable[int]]
    ) -> Connection[Any]:
        """Builds a connection from a service page, mapping each item with `to_node`."""
        return cls(
            edges=[
                Edge(node=to_node(item), cursors=page.cursors, index=i)
                for i, item in enumerate(page.items)
            ],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            count=count,
        )
