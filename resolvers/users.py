"""Resolvers about the caller."""

from __future__ import annotations

import strawberry

from schema.context import Info, IsAuthenticated
from schema.users import Viewer


@strawberry.type
class UserQueries:
    @strawberry.field(
        description="The caller, from the verified token.", permission_classes=[IsAuthenticated]
    )
    def me(self, info: Info) -> Viewer:
        return Viewer.from_principal(info.context.principal)
