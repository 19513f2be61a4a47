"""How a GraphQL document is checked before it runs: validation verdicts found by the
document's text, and refused variables answered with the payload's `{field, code, message}`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import strawberry
from graphql import GraphQLError, ValidationRule
from strawberry.extensions import AddValidationRules

from resolvers.root import DocumentChecks
from resolvers.root import schema as app_schema


class Counted(ValidationRule):
    """Counts the documents it validates."""

    runs = 0

    def enter_document(self, *_: object) -> None:
        Counted.runs += 1


class SmallCache(DocumentChecks):
    MAX_SIZE = 2
    verdicts: OrderedDict[Any, list[GraphQLError]] = OrderedDict()


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"


def build() -> strawberry.Schema:
    SmallCache.verdicts.clear()
    return strawberry.Schema(
        query=Query, extensions=[lambda: AddValidationRules([Counted]), SmallCache]
    )


async def test_a_document_is_validated_once_per_text() -> None:
    schema = build()
    text = "query Probe { hello " + "again: hello }"
    Counted.runs = 0
    first = await schema.execute(text)
    again = await schema.execute("".join(text))  # an equal text in a new string object
    assert first.errors is None and again.errors is None
    assert again.data == {"hello": "hi", "again": "hi"}
    assert Counted.runs == 1

    other = await schema.execute("query Other { hello }")
    assert other.errors is None and Counted.runs == 2


async def test_a_refusal_is_remembered_with_its_errors() -> None:
    schema = build()
    Counted.runs = 0
    first = await schema.execute("{ hello nope }")
    again = await schema.execute("{ hello nope }")
    assert first.errors and again.errors
    assert [e.message for e in again.errors] == [e.message for e in first.errors]
    assert "nope" in first.errors[0].message
    assert Counted.runs == 1


async def test_the_cache_keeps_the_most_recently_used_verdicts() -> None:
    schema = build()
    texts = ["{ hello }", "{ a: hello }", "{ b: hello }"]
    for text in texts:
        await schema.execute(text)
    assert [key[1] for key in SmallCache.verdicts] == texts[1:]

    Counted.runs = 0
    await schema.execute(texts[0])  # forgotten: validated again
    assert Counted.runs == 1


CREATE = """mutation Create($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id } }
}"""
FIND = """query Find($filter: CampaignFilter, $first: Int) {
  campaigns(filter: $filter, first: $first) { edges { cursor } }
}"""
VALID = {"name": "Spring", "message": "Hi"}


async def user_errors(query: str, variables: dict[str, Any]) -> list[tuple[list[str], str]]:
    """Runs with no context: refused variables stop a request before any resolver runs."""
    result = await app_schema.execute(query, variable_values=variables)
    assert result.errors, result
    found = []
    for error in result.errors:
        assert error.extensions is not None and error.extensions["code"] == "BAD_USER_INPUT"
        (entry,) = error.extensions["userErrors"]
        assert entry["message"], entry
        found.append((entry["field"], entry["code"]))
    return found


async def test_missing_and_unknown_fields_of_one_input_are_each_named() -> None:
    answer = await user_errors(CREATE, {"input": {"nmae": "Spring", "extra": 1}})
    assert answer == [
        (["input", "name"], "REQUIRED"),
        (["input", "message"], "REQUIRED"),
        (["input", "nmae"], "UNKNOWN_FIELD"),
        (["input", "extra"], "UNKNOWN_FIELD"),
    ]


async def test_a_missing_or_null_variable_is_required() -> None:
    assert await user_errors(CREATE, {}) == [(["input"], "REQUIRED")]
    assert await user_errors(CREATE, {"input": None}) == [(["input"], "REQUIRED")]
    null_name = {"input": {**VALID, "name": None}}
    assert await user_errors(CREATE, null_name) == [(["input", "name"], "REQUIRED")]


async def test_items_of_a_list_are_named_by_their_index() -> None:
    contacts = [{"phoneNumber": "+14155550101"}, {"phoneNumber": 5}, "Ana", {"nick": "A"}]
    answer = await user_errors(CREATE, {"input": {**VALID, "newContacts": contacts}})
    assert answer == [
        (["input", "newContacts", "1", "phoneNumber"], "INVALID_TYPE"),
        (["input", "newContacts", "2"], "INVALID_TYPE"),
        (["input", "newContacts", "3", "nick"], "UNKNOWN_FIELD"),
    ]
    # A single value where a list is expected is read as a list of one.
    single = {"input": {**VALID, "newContacts": {"phoneNumber": 5}}}
    assert await user_errors(CREATE, single) == [
        (["input", "newContacts", "phoneNumber"], "INVALID_TYPE")
    ]


async def test_enum_and_date_refusals_carry_the_services_codes() -> None:
    bad = {"status": "SENT", "type": "EMAIL", "scheduleDate": "tomorrow"}
    assert sorted(await user_errors(CREATE, {"input": {**VALID, **bad}})) == [
        (["input", "scheduleDate"], "INVALID_DATE"),
        (["input", "status"], "INVALID_STATUS"),
        (["input", "type"], "UNSUPPORTED_TYPE"),
    ]
    # Not a name at all: the wrong type of value, whatever the enum.
    assert await user_errors(CREATE, {"input": {**VALID, "status": 3}}) == [
        (["input", "status"], "INVALID_TYPE")
    ]
    other_enum = {"filter": {"status": ["DRAFT", "NOPE", None]}, "first": "ten"}
    assert await user_errors(FIND, other_enum) == [
        (["filter", "status", "1"], "INVALID_CHOICE"),
        (["filter", "status", "2"], "REQUIRED"),
        (["first"], "INVALID_TYPE"),
    ]


async def test_a_required_field_says_so_and_others_keep_graphql_cores_words() -> None:
    result = await app_schema.execute(CREATE, variable_values={"input": {"name": "x", "z": 1}})
    assert result.errors
    entries = [e.extensions["userErrors"][0] for e in result.errors if e.extensions]
    assert entries[0] == {
        "field": ["input", "message"],
        "code": "REQUIRED",
        "message": "Field is required",
    }
    assert entries[1]["code"] == "UNKNOWN_FIELD"
    assert entries[1]["message"] == result.errors[1].original_error.message  # type: ignore[union-attr]
