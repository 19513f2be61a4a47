"""Strawberry types derived from the pydantic shapes, so each field is declared once.

`graphql_type(Model)` and `graphql_input(Model)` decorate a class whose body holds only what
GraphQL does differently: a field's GraphQL type where the pydantic one cannot say it (an id
as `ID`, a date string as `DateTime`, a plain string as an enum), a default GraphQL shows, a
field only GraphQL has, and resolvers. Every other field, its type and its description come
from the model, in the model's order; the description of a field the model has is always the
model's, so the GraphQL schema and OpenAPI cannot disagree on it.

Strawberry's own pydantic integration (`strawberry.experimental.pydantic`) was the first
choice; it cannot keep today's inputs (it replaces a field's default by the model's, so a
partial update's fields would print `= null`), and it adds an `is_type_of` check per object,
on pages of up to 100 rows. This is the part of it the schema needs, on public Strawberry API.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import strawberry
from pydantic import BaseModel
from strawberry.types.field import StrawberryField

from services.inputs import Identifier, Timestamp, parse_as

C = TypeVar("C", bound=type)

DERIVED: dict[type[BaseModel], type] = {}
"""Each derived model's object type, for nested shapes (`Campaign.stats` is `CampaignStats`)."""
DERIVED_INPUTS: dict[type[BaseModel], type] = {}
"""Each derived model's input type."""


@dataclass(frozen=True)
class Derived:
    """What a derived type was made from: the model, and which of its fields GraphQL shows."""

    model: type[BaseModel]
    fields: tuple[str, ...]
    partial: bool


def graphql_type(
    model: type[BaseModel],
    *,
    name: str | None = None,
    description: str,
    exclude: tuple[str, ...] = (),
    only: tuple[str, ...] = (),
) -> Callable[[C], C]:
    """Derives an object type from `model`; the class body holds GraphQL's differences.

    `only` derives a part of the shape (a subscription's few fields, say).
    """

    def wrap(cls: C) -> C:
        if only:
            left_out = tuple(f for f in model.model_fields if f not in only)
            _derive(cls, model, exclude + left_out, is_input=False, partial=False)
            return strawberry.type(cls, name=name, description=description)
        _derive(cls, model, exclude, is_input=False, partial=False)
        DERIVED.setdefault(model, cls)
        return strawberry.type(cls, name=name, description=description)

    return wrap


def graphql_input(
    model: type[BaseModel],
    *,
    name: str | None = None,
    description: str,
    exclude: tuple[str, ...] = (),
    partial: bool = False,
) -> Callable[[C], C]:
    """Derives an input type from `model`.

    `partial`: every optional field may be left out (`UNSET`, no default shown), for changes
    where only the fields sent change.
    """

    def wrap(cls: C) -> C:
        _derive(cls, model, exclude, is_input=True, partial=partial)
        DERIVED_INPUTS.setdefault(model, cls)
        return strawberry.input(cls, name=name, description=description)

    return wrap


def to_command(value: Any, what: str = "input") -> Any:
    """Turns a derived GraphQL input into its model: the one converter between the two.

    The plain data goes through `parse_as`, as a REST body does, so the same mistake gets
    the same code and path from both APIs.
    """
    derived: Derived = type(value).__derived_from__
    return parse_as(derived.model, plain(value), what)


def plain(value: Any) -> Any:
    """Returns a GraphQL input value as the data a REST caller would send for it.

    Fields GraphQL shows but the model lacks are left out; so are fields left `UNSET` (a
    partial change keeps them) and, outside partial changes, nulls (the model's default is
    null, or a null is read as its default). Enums become their values and dates ISO strings.
    """
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    derived: Derived | None = getattr(type(value), "__derived_from__", None)
    if derived is None:
        return value
    out: dict[str, Any] = {}
    for name in derived.fields:
        item = getattr(value, name)
        if item is strawberry.UNSET or (item is None and not derived.partial):
            continue
        out[name] = plain(item)
    return out


def _derive(
    cls: type, model: type[BaseModel], exclude: tuple[str, ...], *, is_input: bool, partial: bool
) -> None:
    own: dict[str, Any] = dict(inspect.get_annotations(cls))
    annotations: dict[str, Any] = {}
    shown: list[str] = []
    for field_name, info in model.model_fields.items():
        if field_name in exclude:
            continue
        declared = cls.__dict__.get(field_name, _NOTHING)
        if isinstance(declared, StrawberryField) and declared.base_resolver is not None:
            continue  # GraphQL resolves it; the resolver keeps its place after the fields
        shown.append(field_name)
        if isinstance(declared, StrawberryField):
            raise TypeError(f"{cls.__name__}.{field_name}: describe it on {model.__name__}")
        optional = partial and not info.is_required()
        annotation = own.pop(field_name, None)
        if annotation is None:
            # pydantic keeps a field's own `Annotated` marks apart, in `metadata`
            marked = Annotated[(info.annotation, *info.metadata)] if info.metadata else None
            annotation = _graphql_annotation(marked or info.annotation, is_input)
            if optional:
                annotation = typing.Optional[annotation]  # noqa: UP045
        if optional:
            default: Any = strawberry.UNSET
        elif declared is not _NOTHING:
            default = declared
        elif info.is_required():
            default = _NOTHING
        else:
            default = info.get_default(call_default_factory=True)
        annotations[field_name] = annotation
        if default is _NOTHING:
            setattr(cls, field_name, strawberry.field(description=info.description))
        elif isinstance(default, list) and not is_input:
            # an output's list default is built per object (a dataclass refuses a shared one)
            made: Any = functools.partial(list, default)
            setattr(
                cls,
                field_name,
                strawberry.field(default_factory=made, description=info.description),
            )
        else:
            described = strawberry.field(default=default, description=info.description)
            setattr(cls, field_name, described)
    annotations.update(own)  # fields only GraphQL has, after the model's
    cls.__annotations__ = annotations
    cls.__derived_from__ = Derived(model, tuple(shown), partial)  # type: ignore[attr-defined]


_NOTHING: Any = object()


def _graphql_annotation(annotation: Any, is_input: bool) -> Any:
    """Maps a pydantic annotation to the one Strawberry reads."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        for mark in metadata:
            if isinstance(mark, Identifier):
                return strawberry.ID
            if isinstance(mark, Timestamp):
                return datetime
        return _graphql_annotation(base, is_input)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"declare the GraphQL type of {annotation}")
        return typing.Optional[_graphql_annotation(members[0], is_input)]  # noqa: UP045
    if origin is list:
        (item,) = get_args(annotation)
        return list[_graphql_annotation(item, is_input)]  # type: ignore[misc]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        derived = (DERIVED_INPUTS if is_input else DERIVED).get(annotation)
        if derived is None:
            raise TypeError(f"derive {annotation.__name__}'s GraphQL type first")
        return derived
    if annotation in (str, int, bool, float, datetime) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    ):
        return annotation
    raise TypeError(f"declare the GraphQL type of {annotation}")
