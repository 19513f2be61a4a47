"""GraphQL types for people."""

from __future__ import annotations

import strawberry

from core.auth import Principal


@strawberry.type(description="A rep of the organization.")
class User:
    id: strawberry.ID = strawberry.field(description="The user's id (the token's `sub`).")
    fullName: str = strawberry.field(description="The user's display name.")


@strawberry.type(description="The verified caller, as read from the bearer token.")
class Viewer:
    user_id: strawberry.ID = strawberry.field(description="The caller's user id.")
    organization_id: strawberry.ID = strawberry.field(
        description="The organization every read and write of this caller is scoped to."
    )
    full_name: str = strawberry.field(description="The caller's display name.")
    roles: list[str] = strawberry.field(description="Roles granted by the token.")

    @classmethod
    def from_principal(cls, principal: Principal) -> Viewer:
        """Maps the verified principal to its public shape."""
        return cls(
            user_id=strawberry.ID(str(principal.user_id)),
            organization_id=strawberry.ID(str(principal.organization_id)),
            full_name=principal.full_name,
            roles=list(principal.roles),
        )
