"""Assembles `Query` and `Mutation` from per-domain resolver classes."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter

from resolvers.campaigns import CampaignMutations
from resolvers.errors import ErrorCodes
from resolvers.users import UserQueries


@strawberry.type(description="Read operations.")
class Query(UserQueries):
    pass


@strawberry.type(description="Write operations.")
class Mutation(CampaignMutations):
    pass


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[
        ErrorCodes,
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxAliasesLimiter(max_alias_count=30),
        lambda: MaxTokensLimiter(max_token_count=5000),
    ],
)
