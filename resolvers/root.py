"""Assembles `Query` and `Mutation` from per-domain resolver classes."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    parse,
)
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.types import ExecutionContext

from resolvers.campaigns import CampaignMutations, CampaignQueries, CampaignSubscriptions
from resolvers.contacts import ContactMutations, ContactQueries
from resolvers.conversations import (
    ConversationMutations,
    ConversationQueries,
    ConversationSubscriptions,
)
from resolvers.errors import ErrorCodes
from resolvers.organizations import OrganizationMutations, OrganizationQueries
from resolvers.suppressions import SuppressionMutations, SuppressionQueries
from resolvers.users import UserQueries
from schema.context import MAX_CREATIONS

logger = logging.getLogger(__name__)


@strawberry.type(description="Read operations.")
class Query(
    UserQueries,
    CampaignQueries,
    ContactQueries,
    OrganizationQueries,
    ConversationQueries,
    SuppressionQueries,
):
    pass


@strawberry.type(description="Write operations.")
class Mutation(
    CampaignMutations,
    ContactMutations,
    OrganizationMutations,
    ConversationMutations,
    SuppressionMutations,
):
    pass


@strawberry.type(description="Values pushed over a websocket (graphql-transport-ws).")
class Subscription(CampaignSubscriptions, ConversationSubscriptions):
    pass


class CampaignSchema(strawberry.Schema):
    """Logs client mistakes at debug level; `ErrorCodes` logs the unexpected ones with traces."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            logger.debug("graphql error: %s", error.message)


CREATIONS = frozenset({"createCampaign", "duplicateCampaign"})
"""Fields that create a campaign: each can write up to 50,000 recipients, so aliases of them
must not multiply one request's writes (30 aliases once made 30 campaigns from 34 KB). A batch
is counted at run time by `Context.claim_creation`."""


class OneCreationPerRequest(ValidationRule):
    """Refuses a mutation document that would run `createCampaign` more than once, counting
    aliases and each use of a fragment."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
        if node.operation is not OperationType.MUTATION:
            return
        fragments = {
            f.name.value: f
            for f in self.context.document.definitions
            if isinstance(f, FragmentDefinitionNode)
        }
        found: list[FieldNode] = []
        _collect(node.selection_set, fragments, found, depth=0)
        if len(found) > MAX_CREATIONS:
            self.report_error(
                GraphQLError(
                    f"A request may create at most {MAX_CREATIONS} campaign; this one asks for "
                    f"{len(found)}. Send them as separate requests.",
                    found,
                    extensions={"code": "TOO_MANY_CREATIONS"},
                )
            )


def _collect(
    selections: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    found: list[FieldNode],
    depth: int,
) -> None:
    if selections is None or depth > 20:  # deeper is refused by the depth limit anyway
        return
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in CREATIONS:
                found.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set, fragments, found, depth + 1)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                _collect(fragment.selection_set, fragments, found, depth + 1)


MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_FIELDS = 1_000
MAX_DEPTH_ANONYMOUS = 5
MAX_ALIASES_ANONYMOUS = 5
MAX_FIELDS_ANONYMOUS = 100
INTROSPECTION = frozenset({"__schema", "__type"})

MAX_TOKENS = 5_000
LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    OneCreationPerRequest,
)
"""Depth, alias and creation limits, built once: Strawberry's limiters build new rule classes
per instance, and rules that differ per request would never find a cached verdict."""


def refusal(parsed: ParsedText, request: object) -> GraphQLError | None:
    """The field budget's verdict on a document, before validation looks at it; without a
    token the budgets are smaller, and introspection can be switched off by a setting.

    Validation compares fields pairwise where they could merge, so a field repeated a thousand
    times costs a lot of CPU and answers an opaque "Validation aborted." (docs/api.md): the
    cheapest way to burn CPU without a token. Counting is one linear walk (each fragment once).
    A caller without a token can run nothing but `me` and introspection, so it gets a tenth of
    the field budget (the IDE's introspection selects 72 fields), depth 5 and 5 aliases;
    introspection's own nesting (`ofType { ofType ... }`) does not count toward depth.
    """
    anonymous = getattr(request, "anonymous", False)
    settings = getattr(request, "settings", None)
    who = "without a token" if anonymous else "per request"
    size = measure(parsed)
    budget = MAX_FIELDS_ANONYMOUS if anonymous else MAX_FIELDS
    if size.fields > budget:
        return GraphQLError(
            f"This document selects {size.fields} fields; at most {budget} are accepted {who}",
            extensions={"code": "TOO_MANY_FIELDS", "fields": size.fields, "max": budget},
        )
    introspection = settings is None or settings.graphql_introspection
    if not introspection and size.introspects:
        return GraphQLError(
            "Introspection is switched off on this server",
            extensions={"code": "INTROSPECTION_DISABLED"},
        )
    if not anonymous:
        return None  # the validation rules hold the larger depth and alias limits
    if size.aliases > MAX_ALIASES_ANONYMOUS:
        return GraphQLError(
            f"This document uses {size.aliases} aliases; at most {MAX_ALIASES_ANONYMOUS} "
            f"are accepted {who}",
            extensions={"code": "TOO_MANY_ALIASES", "max": MAX_ALIASES_ANONYMOUS},
        )
    if size.depth > MAX_DEPTH_ANONYMOUS:
        return GraphQLError(
            f"This document is {size.depth} levels deep; at most {MAX_DEPTH_ANONYMOUS} are "
            f"accepted {who}",
            extensions={"code": "TOO_DEEP", "depth": size.depth, "max": MAX_DEPTH_ANONYMOUS},
        )
    return None


@dataclass(frozen=True)
class DocumentSize:
    """What the field budget counts in a document."""

    fields: int
    aliases: int
    depth: int
    introspects: bool


class ParsedText:
    """A parsed document as a cache key: hashed and compared by its text.

    graphql-core's nodes hash by walking the whole tree; hashing the text is one pass in C. The
    same text always parses to the same document, so the text is as good a key.
    """

    __slots__ = ("document", "text")

    def __init__(self, text: str | None, document: DocumentNode) -> None:
        self.text = text
        self.document = document

    def __hash__(self) -> int:
        return hash(self.text) if self.text is not None else id(self.document)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedText):
            return NotImplemented
        if self.text is None and other.text is None:
            return self.document is other.document
        return self.text == other.text


@lru_cache(maxsize=512)
def measure(parsed: ParsedText) -> DocumentSize:
    """A document's size, once per text: apps send the same few operations over and over."""
    document = parsed.document
    fields = list(_fields(document))
    return DocumentSize(
        fields=len(fields),
        aliases=sum(1 for f in fields if f.alias is not None),
        depth=_depth(document),
        introspects=any(f.name.value in INTROSPECTION for f in fields),
    )


def _fields(document: DocumentNode) -> Iterator[FieldNode]:
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode):
            yield node
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)


def _depth(document: DocumentNode) -> int:
    """The deepest field nesting of any operation, fragments expanded (each measured once),
    introspection fields not descended into."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, int] = {}

    def of(selections: SelectionSetNode | None, seen: frozenset[str]) -> int:
        deepest = 0
        for selection in selections.selections if selections is not None else ():
            if isinstance(selection, FieldNode):
                if not selection.name.value.startswith("__"):
                    deepest = max(deepest, 1 + of(selection.selection_set, seen))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, of(selection.selection_set, seen))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in seen or name not in fragments:
                    continue  # a cycle or unknown fragment: validation refuses it
                if name not in memo:
                    memo[name] = of(fragments[name].selection_set, seen | {name})
                deepest = max(deepest, memo[name])
        return deepest

    operations = (d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return max((of(op.selection_set, frozenset()) for op in operations), default=0)


Verdict = tuple[object, str, tuple[object, ...]]
"""A validation verdict's key: the schema, the document's text and the rules."""


class DocumentChecks(SchemaExtension):
    """What every document passes before it runs, in one extension (each extension costs every
    request a round of Strawberry's hooks): parsing with a token limit, the field budget
    (`refusal`), and validation with the depth, alias and creation limits.

    Apps send the same few documents over and over, so a document is parsed and validated
    once per text: a verdict found is handed to Strawberry, which then skips validating; one
    not found is Strawberry's own validation, remembered afterwards. Keyed by the text rather
    than the parsed document (as Strawberry's `ParserCache` and `ValidationCache` are):
    graphql-core's nodes hash by walking the whole tree, the text in one pass in C. Both
    caches hold query text and its verdict only, never data, so tenants share them.
    """

    MAX_SIZE = 512
    verdicts: OrderedDict[Verdict, list[GraphQLError]] = OrderedDict()
    """Shared by every request; the least recently used verdict goes first."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query:
            context.graphql_document = parse_once(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = (*context.validation_rules, *LIMIT_RULES)
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            error = refusal(ParsedText(context.query, document), context.context)
            if error is not None:
                context.pre_execution_errors = [error]
        key: Verdict | None = None
        if context.pre_execution_errors is None and context.query is not None:
            key = (context.schema, context.query, context.validation_rules)
            found = self.verdicts.get(key)
            if found is not None:
                self.verdicts.move_to_end(key)
                context.pre_execution_errors = found
                key = None
        yield
        if key is not None and context.pre_execution_errors is not None:
            self.verdicts[key] = context.pre_execution_errors
            if len(self.verdicts) > self.MAX_SIZE:
                self.verdicts.popitem(last=False)


@lru_cache(maxsize=512)
def parse_once(text: str) -> DocumentNode:
    """A document parsed once per text (a refused one is parsed again: errors are not kept)."""
    return parse(text, max_tokens=MAX_TOKENS)


schema = CampaignSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[ErrorCodes, DocumentChecks],
)
