"""The suppression list: parse, call `services.contacts.suppressions`, shape the answer."""

from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission

from resolvers.payloads import user_errors
from schema.context import Info, IsAuthenticated
from schema.derive import to_command
from schema.outputs import SuppressedNumberOut, SuppressResultOut, UnsuppressResultOut
from schema.pagination import Connection
from schema.suppressions import (
    SuppressedNumber,
    SuppressNumbersInput,
    SuppressNumbersPayload,
    UnsuppressNumbersInput,
    UnsuppressNumbersPayload,
)
from services.contacts import suppressions

AUTH: list[type[BasePermission]] = [IsAuthenticated]


@strawberry.type
class SuppressionQueries:
    @strawberry.field(
        description="The organization's suppression list in the order numbers were added "
        "(each import's in number order); `search` is the start of the number (its digits, `+` "
        "optional), and from 7 digits on its matches come in number order. At most 100 per "
        "page; a short search that matches few numbers may answer a short page with "
        "`hasNextPage` (continue from `endCursor`).",
        permission_classes=AUTH,
    )
    async def suppressed_numbers(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[SuppressedNumber]:
        context = info.context
        page = await suppressions.suppressed_page(
            context.tenant, context.settings, first=first, after=after, search=search
        )

        async def count() -> int:
            return await suppressions.count_suppressed(context.tenant, search)

        return Connection.of(page, SuppressedNumberOut.of, count)


@strawberry.type
class SuppressionMutations:
    @strawberry.mutation(
        description="Adds numbers (typed or CSV, up to 100,000) to the suppression list: they "
        "are never texted, by campaigns, follow-ups or reps. Entries that are not phone numbers "
        "are listed in failedDetails; the others are imported.",
        permission_classes=AUTH,
    )
    @user_errors
    async def suppress_numbers(
        self, info: Info, input: SuppressNumbersInput
    ) -> SuppressNumbersPayload:
        context = info.context
        result = await suppressions.suppress_numbers(
            context.tenant, to_command(input), context.settings
        )
        return SuppressNumbersPayload(result=SuppressResultOut.of(result))  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Takes numbers off the suppression list.", permission_classes=AUTH
    )
    @user_errors
    async def unsuppress_numbers(
        self, info: Info, input: UnsuppressNumbersInput
    ) -> UnsuppressNumbersPayload:
        context = info.context
        result = await suppressions.unsuppress_numbers(
            context.tenant, to_command(input), context.settings
        )
        return UnsuppressNumbersPayload(result=UnsuppressResultOut.of(result))  # type: ignore[arg-type]
