"""Assembles `Query` and `Mutation` from per-domain resolver classes."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from resolvers.campaigns import CampaignMutations, CampaignQueries
from resolvers.contacts import ContactMutations, ContactQueries
from resolvers.errors import ErrorCodes
from resolvers.users import UserQueries

logger = logging.getLogger(__name__)


@strawberry.type(description="Read operations.")
class Query(UserQueries, CampaignQueries, ContactQueries):
    pass


@strawberry.type(description="Write operations.")
class Mutation(CampaignMutations, ContactMutations):
    pass


class CampaignSchema(strawberry.Schema):
    """Logs client mistakes at debug level; `ErrorCodes` logs the unexpected ones with traces."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            logger.debug("graphql error: %s", error.message)


_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=10).validation_rules,
    *MaxAliasesLimiter(max_alias_count=30).validation_rules,
)


class QueryLimits(AddValidationRules):
    """Depth and alias limits, with rule classes built once.

    Strawberry's limiters build new rule classes per instance, so per-request instances made
    every request's validation rules differ and `ValidationCache` never hit.
    """

    def __init__(self) -> None:
        super().__init__(list(_LIMIT_RULES))


schema = CampaignSchema(
    query=Query,
    mutation=Mutation,
    extensions=[
        ErrorCodes,
        QueryLimits,
        lambda: MaxTokensLimiter(max_token_count=5000),
        # Apps send the same few documents over and over: parse and validate each once.
        # Both caches hold query text and its verdict only, never data, so tenants share them.
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ],
)
