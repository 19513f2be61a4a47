"""The input of `create_campaign`, shared by REST (as the OpenAPI body) and GraphQL.

Field names are the legacy contract's. Types are strict where a lenient cast would lose a
mistake (`"isAutopilot": "yes"` is an error, not `true`); ids and dates are strings here and
are checked by the service, which owns the messages for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from core.errors import FieldError, InvalidInput


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=False)


class NewContactInput(_Input):
    """A contact typed in by the rep; reused when its phone already exists."""

    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    phoneNumber: StrictStr | None = None
    email: StrictStr | None = None


class ExistingContactRef(_Input):
    """A contact picked from the organization's list; only `_id` is read, the rest is a snapshot."""

    id: StrictStr = Field(alias="_id", description="Contact id (24 hex characters)")
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    phoneNumber: StrictStr | None = None


class CsvData(_Input):
    """Contacts from a spreadsheet: either `csv` text or `headers` + `rows`.

    `columns` maps contact fields to CSV headers (`{"phoneNumber": "Mobile"}`); without it,
    common header spellings are recognised ("Phone", "Phone Number", "First Name", ...).
    """

    csv: StrictStr | None = None
    headers: list[StrictStr] | None = None
    rows: list[list[StrictStr | None]] | None = None
    columns: dict[StrictStr, StrictStr] | None = None
    delimiter: Annotated[StrictStr, Field(min_length=1, max_length=1)] = ","


class Segmentation(_Input):
    """A filter over the organization's contacts, resolved into recipients at creation."""

    contactStatus: StrictStr | list[StrictStr] | None = None
    process: StrictStr | None = None
    tags: list[StrictStr] | None = Field(default=None, description="Any of these tags")
    createdAfter: StrictStr | None = Field(default=None, description="ISO 8601 with a zone")
    createdBefore: StrictStr | None = Field(default=None, description="ISO 8601 with a zone")


class Assignment(_Input):
    """How recipients are shared among reps; the chosen rep is stored on each recipient."""

    strategy: Literal["round_robin", "single"] = "round_robin"
    userIds: list[StrictStr] = Field(min_length=1)


class CreateCampaignInput(_Input):
    """Everything a caller can send to create a campaign."""

    name: StrictStr | None = None
    message: StrictStr | None = None
    newContacts: list[NewContactInput] = []
    selectedExistingContacts: list[ExistingContactRef] = []
    userIds: list[StrictStr] = Field(default=[], description="Legacy format - contact IDs")
    rawCsvData: CsvData | None = None
    segmentation: Segmentation | None = None
    assignment: Assignment | None = None
    scheduleDate: StrictStr | None = Field(default=None, description="ISO 8601 with a zone")
    status: StrictStr | None = Field(default=None, description="'draft' or 'scheduled'")
    process: StrictStr | None = None
    contactStatus: StrictStr | None = None
    isAutopilot: StrictBool = False
    type: StrictStr = "sms"

    def fingerprint_source(self) -> dict[str, Any]:
        """Returns the canonical form an idempotency key is bound to."""
        return self.model_dump(mode="json", by_alias=True)


def field_errors_from(errors: Sequence[Any]) -> list[FieldError]:
    """Turns pydantic's (or FastAPI's) errors into field errors with paths into the body."""
    out: list[FieldError] = []
    for err in errors:
        path = tuple(p for p in err["loc"] if p != "body")
        out.append(FieldError(path, _code(err["type"]), _message(err)))
    return out


def _code(kind: str) -> str:
    if kind == "missing":
        return "REQUIRED"
    if kind == "json_invalid":
        return "INVALID_JSON"
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type", "list_type"):
        return "INVALID_TYPE"
    return "INVALID"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "This field is required"
    expected = {
        "string_type": "a string",
        "bool_type": "true or false",
        "list_type": "a list",
        "model_attributes_type": "an object",
        "dict_type": "an object",
        "model_type": "an object",
        "int_type": "an integer",
    }.get(kind)
    if expected:
        return f"Expected {expected}, got {type(err.get('input')).__name__}"
    return str(err["msg"])


def parse_input(data: Any) -> CreateCampaignInput:
    """Validates a decoded body; a wrong shape is refused as a whole with field errors."""
    try:
        return CreateCampaignInput.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("Invalid campaign input", field_errors_from(exc.errors())) from exc
