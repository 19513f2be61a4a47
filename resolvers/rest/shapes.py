"""The shared answer shapes in the legacy REST form: dates written as `…000Z`.

The legacy contract writes every date as `2026-05-20T15:00:00.000Z` (milliseconds, `Z`). That
is REST's formatting, not the shape's: each shape here is derived from its `schema.outputs`
model with its date fields re-typed, keeping their names, order, descriptions and defaults,
so nothing is declared a second time. The class names stay the models' (OpenAPI's component
names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, create_model

from schema import outputs


def iso_millis(value: datetime) -> str:
    """Formats like the legacy API: `2026-05-20T15:00:00.000Z`."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


EXAMPLES = ["2026-05-20T15:00:00.000Z"]
LegacyDateTime = Annotated[
    datetime,
    PlainSerializer(iso_millis, return_type=str, when_used="json"),
    Field(examples=EXAMPLES),
]

M = TypeVar("M", bound=BaseModel)


def legacy_dates(model: type[M]) -> type[M]:
    """Returns `model` with each `datetime` field (or optional one, or one of the models in a
    list field) written the legacy way."""
    changed: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        # the field's own settings (alias, description, default) are merged in last
        if info.annotation is datetime:
            changed[name] = Annotated[LegacyDateTime, info, Field(examples=EXAMPLES)]
        elif info.annotation == datetime | None:
            changed[name] = Annotated[LegacyDateTime | None, info]
        elif (item := _listed_model(info.annotation)) is not None and _has_dates(item):
            changed[name] = Annotated[list[_readable(legacy_dates(item))], info]  # type: ignore[misc]
    if not changed:
        return model
    derived: type[M] = create_model(
        model.__name__, __base__=model, __module__=__name__, __doc__=model.__doc__, **changed
    )
    return derived


def _listed_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _has_dates(model: type[BaseModel]) -> bool:
    return any(
        info.annotation in (datetime, datetime | None) for info in model.model_fields.values()
    )


def _readable(model: type[M]) -> type[M]:
    """The derived model, also built from an instance of the model it derives from (an output
    is made from the stored objects)."""
    readable: type[M] = type(
        model.__name__,
        (model,),
        {
            "model_config": ConfigDict(from_attributes=True),
            "__module__": __name__,
            "__doc__": model.__doc__,
        },
    )
    return readable


if TYPE_CHECKING:  # the same shapes as far as types go; only their JSON dates differ
    CampaignSummaryOut = outputs.CampaignSummaryOut
    CampaignOut = outputs.CampaignOut
    ContactOut = outputs.ContactOut
    RecipientOut = outputs.RecipientOut
else:
    CampaignSummaryOut = legacy_dates(outputs.CampaignSummaryOut)
    CampaignOut = legacy_dates(outputs.CampaignOut)
    ContactOut = legacy_dates(outputs.ContactOut)
    RecipientOut = legacy_dates(outputs.RecipientOut)
