"""Both APIs show the same shapes: each field, its type and its description, in GraphQL and OpenAPI.

Each GraphQL type is compared with the OpenAPI component for the same shape. The differences
that are meant are listed below with their reason; any other field, type or description that
exists in one API and not the other fails here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    build_schema,
)

from main import create_app
from resolvers.root import schema

SDL = build_schema(schema.as_str())
OPENAPI: dict[str, Any] = create_app().openapi()
COMPONENTS: dict[str, Any] = OPENAPI["components"]["schemas"]

REST_NAMES = {"id": "_id"}
"""GraphQL's `id` is the legacy contract's `_id`."""
ENUM_NAMES = {"MessageDirection": "Direction"}
"""One enum, two published names: GraphQL's says whose direction it is."""


@dataclass(frozen=True)
class Pair:
    graphql: str
    openapi: str
    graphql_only: dict[str, str]
    rest_only: dict[str, str]
    other_type: dict[str, str]
    """Fields both have, with a different type (and so their own description) on purpose."""


PAGE_PARAMETERS = {
    "limit": "REST's page size (GraphQL: first)",
    "after": "the cursor, as in GraphQL",
}
"""A filter is a list route's query parameters in REST, beside the page's own."""
STRINGS_CHECKED_BY_THE_SERVICE = "REST takes the string and the service answers its own code"
CONSENT_SOURCE = {"consentSource": STRINGS_CHECKED_BY_THE_SERVICE}

PAIRS = [
    Pair("Campaign", "CampaignOut", {
        "recipients": "GraphQL-only nested connection (REST: GET /api/campaigns/{id}/recipients)",
        "history": "GraphQL-only nested list; REST has no history route",
        "failures": "GraphQL-only nested list (REST: GET /api/campaigns/{id}/failures)",
    }, {}, {"createdBy": "GraphQL resolves the rep's current name as a User; REST the snapshot"}),
    Pair("CampaignFailure", "FailureOut", {}, {}, {}),
    Pair("CampaignHold", "Hold", {}, {}, {}),
    Pair("FollowUp", "FollowUp", {}, {}, {}),
    Pair("FollowUpStats", "FollowUpStats", {}, {}, {}),
    Pair("FollowUpInput", "FollowUpInput", {}, {}, {}),
    Pair("CampaignStats", "StatsOut", {}, {}, {}),
    Pair("FailedDetail", "FailedDetail", {}, {}, {}),
    Pair("MessageStats", "MessageStats", {}, {}, {}),
    Pair("Contact", "ContactOut",
         {"messages": "GraphQL-only nested thread; REST: GET /api/contacts/{id}/messages"}, {}, {}),
    Pair("Recipient", "RecipientOut", {"contact": "GraphQL-only nested contact"}, {}, {}),
    Pair("CreateCampaignInput", "CreateCampaignInput",
         {"idempotencyKey": "REST sends it as the Idempotency-Key header"}, {},
         {"status": STRINGS_CHECKED_BY_THE_SERVICE, "type": STRINGS_CHECKED_BY_THE_SERVICE}),
    Pair("NewContactInput", "NewContactInput", {}, {}, {}),
    Pair("ExistingContactInput", "ExistingContactRef", {}, {
        "firstName": "legacy snapshot, ignored", "lastName": "legacy snapshot, ignored",
        "phoneNumber": "legacy snapshot, ignored",
    }, {}),
    Pair("CsvDataInput", "CsvData", {}, {},
         {"columns": "GraphQL names the four fields; REST takes any mapping, checked by the "
                     "service (UNKNOWN_FIELD)"}),
    Pair("SegmentationInput", "Segmentation", {}, {}, {}),
    Pair("AssignmentInput", "Assignment", {}, {}, {}),
    Pair("UpdateCampaignInput", "UpdateCampaignInput", {}, {}, {}),
    Pair("CreateContactInput", "CreateContactInput", {}, {}, CONSENT_SOURCE),
    Pair("UpdateContactInput", "ContactFields", {}, {}, CONSENT_SOURCE),
    Pair("ConsentInput", "ConsentFields", {}, {}, CONSENT_SOURCE),
    Pair("Message", "MessageOut", {
        "contact": "GraphQL-only nested contact (REST: contactId)",
        "campaign": "GraphQL-only nested campaign (REST: campaignId)",
    }, {"contactId": "REST's id of GraphQL's nested contact",
        "campaignId": "REST's id of GraphQL's nested campaign"}, {}),
    Pair("Conversation", "ConversationOut", {}, {},
         {"owner": "GraphQL resolves the rep as a User; REST gives the user id"}),
    Pair("ContactFilter", "GET /api/contacts", {}, PAGE_PARAMETERS, {}),
    Pair("CampaignFilter", "GET /api/campaigns", {},
         {"page": "REST's legacy page number (GraphQL: cursors)",
          "limit": "REST's page size (GraphQL: first)"},
         {"status": STRINGS_CHECKED_BY_THE_SERVICE, "type": STRINGS_CHECKED_BY_THE_SERVICE}),
    Pair("ConversationFilter", "GET /api/conversations", {}, PAGE_PARAMETERS, {}),
    Pair("SendMessageInput", "SendMessageBody",
         {"contactId": "REST takes the contact from the path"}, {},
         {"idempotencyKey": "REST may send the Idempotency-Key header instead: optional there"}),
    Pair("SuppressedNumber", "SuppressedNumberOut", {}, {}, {}),
    Pair("SuppressResult", "SuppressResultOut", {}, {}, {}),
    Pair("UnsuppressResult", "UnsuppressResultOut", {}, {}, {}),
    Pair("SuppressNumbersInput", "SuppressNumbersInput", {}, {}, {}),
    Pair("UnsuppressNumbersInput", "UnsuppressNumbersInput", {}, {}, {}),
    Pair("UserError", "ErrorItem", {}, {},
         {"field": "GraphQL: a list of argument names; REST: the legacy dotted string"}),
]  # fmt: skip

PAIRED = {p.graphql: p.openapi for p in PAIRS}


def _graphql_type(field: GraphQLField | GraphQLInputField) -> tuple[str, ...]:
    """`[ID!]` is ("list", "string")... with "null" wherever null is allowed."""
    out: list[str] = []
    kind = field.type
    while True:
        nullable = not isinstance(kind, GraphQLNonNull)
        kind = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
        out.append("null" if nullable else "")
        if isinstance(kind, GraphQLList):
            out.append("list")
            kind = kind.of_type
            continue
        assert isinstance(kind, GraphQLNamedType)
        out.append(_graphql_named(kind))
        return tuple(p for p in out if p)


def _graphql_named(kind: GraphQLNamedType) -> str:
    if isinstance(kind, GraphQLEnumType):
        return f"enum {ENUM_NAMES.get(kind.name, kind.name)}"
    if isinstance(kind, GraphQLObjectType | GraphQLInputObjectType):
        return f"shape {PAIRED.get(kind.name, kind.name)}"
    return {"ID": "string", "String": "string", "DateTime": "string", "Int": "integer"}.get(
        kind.name, kind.name.lower()
    )


def _openapi_type(node: dict[str, Any], nullable: bool = False) -> tuple[str, ...]:
    if "anyOf" in node:
        members = [m for m in node["anyOf"] if m.get("type") != "null"]
        assert len(members) == 1, node
        return _openapi_type(members[0], len(members) < len(node["anyOf"]))
    head = ("null",) if nullable else ()
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        kind = "enum" if "enum" in COMPONENTS[name] else "shape"
        return (*head, f"{kind} {name}")
    if node.get("type") == "array":
        return (*head, "list", *_openapi_type(node["items"]))
    return (*head, node.get("type", "any"))


def _openapi_fields(name: str, inputs: bool) -> dict[str, tuple[tuple[str, ...], str | None]]:
    component = _query(name) if " " in name else COMPONENTS[name]
    required = set(component.get("required", ()))
    out = {}
    for field, node in component["properties"].items():
        kind = _openapi_type(node)
        if inputs and field not in required and kind[0] != "null":
            kind = ("null", *kind)  # may be left out: GraphQL's nullable input field
        out[field] = (kind, node.get("description"))
    return out


def _query(route: str) -> dict[str, Any]:
    """A route's query parameters ("GET /api/x"), read as one input shape."""
    method, path = route.split(" ")
    parameters = [
        p for p in OPENAPI["paths"][path][method.lower()]["parameters"] if p["in"] == "query"
    ]
    return {
        "properties": {
            p["name"]: {**p["schema"], "description": p.get("description")} for p in parameters
        },
        "required": [p["name"] for p in parameters if p.get("required")],
    }


def _graphql_fields(name: str) -> dict[str, tuple[tuple[str, ...], str | None]]:
    kind = SDL.type_map[name]
    assert isinstance(kind, GraphQLObjectType | GraphQLInputObjectType)
    out = {}
    for field_name, field in kind.fields.items():
        shape = _graphql_type(field)
        if isinstance(field, GraphQLInputField) and field.default_value is not None:
            shape = shape if shape[0] == "null" else ("null", *shape)  # may be left out
        out[REST_NAMES.get(field_name, field_name)] = (shape, field.description)
    return out


@pytest.mark.parametrize("pair", PAIRS, ids=[p.graphql for p in PAIRS])
def test_each_field_has_one_name_type_and_description_in_both_apis(pair: Pair) -> None:
    inputs = isinstance(SDL.type_map[pair.graphql], GraphQLInputObjectType)
    graphql, rest = _graphql_fields(pair.graphql), _openapi_fields(pair.openapi, inputs)
    assert set(graphql) - set(rest) == set(pair.graphql_only)
    assert set(rest) - set(graphql) == set(pair.rest_only)
    for name in set(graphql) & set(rest):
        (graphql_type, graphql_text), (rest_type, rest_text) = graphql[name], rest[name]
        if name not in pair.other_type:
            assert graphql_text == rest_text, (pair.graphql, name)
            assert _loose(graphql_type) == _loose(rest_type), (pair.graphql, name)


def _loose(kind: tuple[str, ...]) -> tuple[str, ...]:
    """Inputs that may be left out are nullable in GraphQL and optional in OpenAPI alike."""
    return tuple(k for k in kind if k != "null") if kind and kind[0] == "null" else kind


OUTPUTS = [p for p in PAIRS if isinstance(SDL.type_map[p.graphql], GraphQLObjectType)]
"""Inputs are left out: a nullable GraphQL input field is an optional REST one."""


@pytest.mark.parametrize("pair", OUTPUTS, ids=[p.graphql for p in OUTPUTS])
def test_outputs_agree_on_null_too(pair: Pair) -> None:
    graphql, rest = _graphql_fields(pair.graphql), _openapi_fields(pair.openapi, inputs=False)
    for name in (set(graphql) & set(rest)) - set(pair.other_type):
        assert graphql[name][0] == rest[name][0], (pair.graphql, name)
