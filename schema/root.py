"""Assembles `Query` and `Mutation` from per-domain resolver classes."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from resolvers.campaigns import CampaignMutations
from resolvers.contacts import ContactQueries
from resolvers.errors import ErrorCodes
from resolvers.users import UserQueries

logger = logging.getLogger(__name__)


@strawberry.type(description="Read operations.")
class Query(UserQueries, ContactQueries):
    pass


@strawberry.type(description="Write operations.")
class Mutation(CampaignMutations):
    pass


class CampaignSchema(strawberry.Schema):
    """Logs client mistakes at debug level; `ErrorCodes` logs the unexpected ones with traces."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            logger.debug("graphql error: %s", error.message)


schema = CampaignSchema(
    query=Query,
    mutation=Mutation,
    extensions=[
        ErrorCodes,
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxAliasesLimiter(max_alias_count=30),
        lambda: MaxTokensLimiter(max_token_count=5000),
    ],
)
