"""The error type returned inside mutation payloads."""

from __future__ import annotations

import strawberry


@strawberry.type(description="A problem with one part of a mutation's input.")
class UserError:
    field: list[str] = strawberry.field(
        description='Path into the arguments, e.g. ["input", "newContacts", "3", "phoneNumber"].'
    )
    code: str = strawberry.field(description="Machine-readable reason, e.g. REQUIRED.")
    message: str = strawberry.field(description="Human-readable reason.")


@strawberry.interface(description="What every mutation answers: its userErrors, if any.")
class Payload:
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the input was refused; empty on success."
    )
