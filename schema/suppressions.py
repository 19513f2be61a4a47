"""GraphQL types of the suppression list, derived from `schema.outputs` and the inputs."""

from __future__ import annotations

import strawberry

from schema.campaigns import FailedDetail  # noqa: F401  (derived first: the results list it)
from schema.derive import graphql_input, graphql_type
from schema.errors import Payload
from schema.outputs import SuppressedNumberOut, SuppressResultOut, UnsuppressResultOut
from services import inputs as commands


@graphql_type(
    SuppressedNumberOut, name="SuppressedNumber", description="A number never to be texted."
)
class SuppressedNumber:
    pass


@graphql_type(SuppressResultOut, name="SuppressResult", description="What an import did.")
class SuppressResult:
    pass


@graphql_type(
    UnsuppressResultOut, name="UnsuppressResult", description="What taking numbers off did."
)
class UnsuppressResult:
    pass


@graphql_input(commands.SuppressNumbersInput, description="Numbers never to be texted.")
class SuppressNumbersInput:
    phoneNumbers: list[str] | None = None  # GraphQL's list coercion; null reads as empty


@graphql_input(commands.UnsuppressNumbersInput, description="Numbers that may be texted again.")
class UnsuppressNumbersInput:
    phoneNumbers: list[str] | None = None


@strawberry.type(description="The result of suppressNumbers.")
class SuppressNumbersPayload(Payload):
    result: SuppressResult | None = strawberry.field(
        default=None, description="What was imported, unless refused."
    )


@strawberry.type(description="The result of unsuppressNumbers.")
class UnsuppressNumbersPayload(Payload):
    result: UnsuppressResult | None = strawberry.field(
        default=None, description="What was taken off, unless refused."
    )
