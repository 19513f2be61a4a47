"""The error type returned inside mutation payloads."""

from __future__ import annotations

import strawberry

from schema.derive import graphql_type
from schema.outputs import FieldProblem


@graphql_type(
    FieldProblem, name="UserError", description="A problem with one part of a mutation's input."
)
class UserError:
    pass


@strawberry.interface(description="What every mutation answers: its userErrors, if any.")
class Payload:
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the input was refused; empty on success."
    )
