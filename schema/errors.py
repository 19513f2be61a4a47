"""The error type returned inside mutation payloads."""

from __future__ import annotations

import strawberry

from core.errors import FieldError


@strawberry.type(description="A problem with one part of a mutation's input.")
class UserError:
    field: list[str] = strawberry.field(
        description='Path into the input, e.g. ["input", "newContacts", "3", "phoneNumber"].'
    )
    code: str = strawberry.field(description="Machine-readable reason, e.g. REQUIRED.")
    message: str = strawberry.field(description="Human-readable reason.")

    @classmethod
    def from_field_error(cls, error: FieldError, root: str = "input") -> UserError:
        return cls(
            field=[root, *(str(p) for p in error.path)], code=error.code, message=error.message
        )
