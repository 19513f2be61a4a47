"""The input of `create_campaign`, shared by REST (as the OpenAPI body) and GraphQL.

Field names are the legacy contract's. Types are strict where a lenient cast would lose a
mistake (`"isAutopilot": "yes"` is an error, not `true`); ids and dates are strings here and
are checked by the service, which owns the messages for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from core.errors import FieldError, InvalidInput


def _encodable(value: str) -> str:
    """Refuses lone UTF-16 surrogates (`"\\ud800"` in JSON): they cannot be stored or sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains an invalid character at position {exc.start}") from None
    return value


def _none_as(default: Callable[[], Any]) -> BeforeValidator:
    """Reads an explicit `null` as the field's default, as legacy callers send both."""
    return BeforeValidator(lambda value: default() if value is None else value)


def _one_as_list() -> BeforeValidator:
    """Reads a single value as a one-item list, as GraphQL's list coercion does."""
    return BeforeValidator(lambda value: [value] if isinstance(value, str) else value)


def _delimiter(value: str) -> str:
    if len(value) != 1 or value in '"\r\n':
        raise ValueError("use one character other than a quote or a line break")
    return value


@dataclass(frozen=True, slots=True)
class Identifier:
    """Marks a string that names a stored document (GraphQL shows it as `ID`)."""


@dataclass(frozen=True, slots=True)
class Timestamp:
    """Marks a date string the service parses itself (GraphQL takes it as `DateTime`)."""


Text = Annotated[StrictStr, AfterValidator(_encodable)]
Id = Annotated[Text, Identifier()]
"""A document id; the service checks its form, so a bad one gets the service's code."""
DateText = Annotated[Text, Timestamp()]
"""ISO 8601 with a zone; the service parses it, so a bad one gets the service's code."""
T = TypeVar("T")
NullableList = Annotated[list[T], _none_as(list)]


MAX_NAME = 200
"""Characters a campaign's name may have (checked by the service, which owns the message)."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=False)


class NewContactInput(_Input):
    """A contact typed in by the rep; reused when its phone already exists."""

    firstName: Text | None = Field(default=None, description="Given name.")
    lastName: Text | None = Field(default=None, description="Family name.")
    phoneNumber: Text | None = Field(
        default=None,
        description="Any format; numbers without + are read in the default region. A missing "
        "or invalid phone leaves this contact out (see failedDetails), not the campaign.",
    )
    email: Text | None = Field(default=None, description="Email address.")


class ExistingContactRef(_Input):
    """A contact picked from the organization's list; only `_id` is read, the rest is a snapshot."""

    id: Id = Field(alias="_id", description="The contact's id (24 hex characters).")
    firstName: Any = Field(default=None, description="Snapshot; ignored")
    lastName: Any = Field(default=None, description="Snapshot; ignored")
    phoneNumber: Any = Field(default=None, description="Snapshot; ignored")


class CsvData(_Input):
    """Contacts from a spreadsheet: either `csv` text or `headers` + `rows`.

    `columns` maps contact fields to CSV headers (`{"phoneNumber": "Mobile"}`); without it,
    common header spellings are recognised ("Phone", "Phone Number", "First Name", ...).
    """

    csv: Text | None = Field(default=None, description="CSV text; first row = header.")
    headers: list[Text] | None = Field(default=None, description="Column headers.")
    rows: list[list[Text | None]] | None = Field(default=None, description="Rows.")
    columns: dict[Text, Text] | None = Field(
        default=None,
        description="Header mapping (contact field to header); common spellings are "
        "recognised without it.",
    )
    delimiter: Annotated[Text, AfterValidator(_delimiter)] = Field(
        default=",", description="One character."
    )


class CsvColumns(_Input):
    """Maps contact fields to CSV headers: `CsvData.columns` as an object of known fields."""

    firstName: Text | None = Field(default=None, description="Header of first names.")
    lastName: Text | None = Field(default=None, description="Header of last names.")
    phoneNumber: Text | None = Field(default=None, description="Header of phones.")
    email: Text | None = Field(default=None, description="Header of emails.")


class Segmentation(_Input):
    """A filter over the organization's contacts, resolved into recipients at creation."""

    contactStatus: Annotated[list[Text], _one_as_list()] | None = Field(
        default=None, description="Any of these stages; one stage may be sent as a string."
    )
    process: Text | None = Field(default=None, description="Pipeline id.")
    tags: list[Text] | None = Field(default=None, description="Any of these tags.")
    createdAfter: DateText | None = Field(
        default=None, description="Inclusive; ISO 8601 with a zone."
    )
    createdBefore: DateText | None = Field(
        default=None, description="Exclusive; ISO 8601 with a zone."
    )


class AssignmentStrategy(StrEnum):
    """How recipients are shared among reps."""

    ROUND_ROBIN = "round_robin"
    SINGLE = "single"


class Assignment(_Input):
    """How recipients are shared among reps; the chosen rep is stored on each recipient."""

    strategy: AssignmentStrategy = Field(
        default=AssignmentStrategy.ROUND_ROBIN, description="round_robin or single."
    )
    userIds: list[Id] = Field(min_length=1, description="Reps to assign to.")


class ConsentFields(_Input):
    """Where a contact's consent to be texted came from, and when."""

    consentSource: Text | None = Field(
        default=None,
        description="form, import, manual, inbound or api. A new contact without one gets "
        "how it came in: manual when typed in (createContact, newContacts), import from "
        "rawCsvData, inbound when it texted first.",
    )
    consentAt: DateText | None = Field(
        default=None,
        description="When consent was given; ISO 8601 with a time zone, not in the future "
        "(default: when the source is recorded).",
    )
    consentFile: Text | None = Field(
        default=None,
        description="A reference to the proof: the imported file's name, a form's id.",
    )


class FollowUpInput(_Input):
    """One follow-up step: a message sent after a delay to recipients who have not answered."""

    delayMinutes: StrictInt = Field(
        description="Minutes after the previous message went to the recipient, 1-43200 (30 days)."
    )
    message: Text = Field(description="Template, with the same rules as the first message.")


class CreateCampaignInput(_Input):
    """Everything a caller can send to create a campaign."""

    name: Text = Field(description=f"Internal name, 1-{MAX_NAME} characters.")
    message: Text = Field(
        description="Template: {{firstName}}, {{lastName}}, {{phoneNumber}}, {{email}}, "
        "with fallbacks like {{firstName|there}}."
    )
    newContacts: NullableList[NewContactInput] = Field(
        default=[], description="Contacts to create (or reuse by phone)."
    )
    selectedExistingContacts: NullableList[ExistingContactRef] = Field(
        default=[], description="Existing contacts by id."
    )
    userIds: NullableList[Id] = Field(
        default=[], description="Legacy form of selectedExistingContacts: contact ids."
    )
    rawCsvData: CsvData | None = Field(default=None, description="Contacts from CSV.")
    consent: ConsentFields | None = Field(
        default=None,
        description="The consent of the contacts this campaign creates (contacts that exist "
        "keep theirs); by default manual for newContacts and import for rawCsvData, now.",
    )
    segmentation: Segmentation | None = Field(
        default=None, description="A filter over the organization's contacts."
    )
    assignment: Assignment | None = Field(default=None, description="Reps to assign to.")
    scheduleDate: DateText | None = Field(
        default=None, description="When to send; ISO 8601 with a time zone; not in the past."
    )
    status: Text | None = Field(
        default=None,
        description="Draft or scheduled; defaults to scheduled with a date, draft without.",
    )
    process: Text | None = Field(default=None, description="Pipeline id.")
    contactStatus: Text | None = Field(default=None, description="Pipeline stage.")
    contactStatusOnReply: Text | None = Field(
        default=None, description="The stage a contact moves to on its first reply; null: it stays."
    )
    isAutopilot: Annotated[StrictBool, _none_as(lambda: False)] = Field(
        default=False, description="Whether the follow-ups run."
    )
    followUps: NullableList[FollowUpInput] = Field(
        default=[],
        description="Up to 5 follow-up steps, sent while isAutopilot is true to recipients who "
        "got the previous message and have not replied.",
    )
    type: Annotated[Text, _none_as(lambda: "sms")] = Field(default="sms", description="Channel.")

    def fingerprint_source(self) -> dict[str, Any]:
        """Returns the canonical form an idempotency key is bound to.

        Contact snapshots are left out: a retry with a refreshed snapshot is the same request.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude={"selectedExistingContacts"})
        data["selectedExistingContacts"] = [c.id for c in self.selectedExistingContacts]
        if data.get("contactStatusOnReply") is None:
            data.pop("contactStatusOnReply", None)  # keys bound before the option still match
        if not data.get("followUps"):
            data.pop("followUps", None)  # likewise
        return data


_LOCATIONS = ("body", "query", "path", "header")
"""FastAPI's first `loc` element says where a value came from; callers know fields by name."""


def field_errors_from(errors: Sequence[Any]) -> list[FieldError]:
    """Turns pydantic's (or FastAPI's) errors into field errors with paths into the body."""
    out: list[FieldError] = []
    for err in errors:
        path = tuple(p for p in err["loc"][:1] if p not in _LOCATIONS) + tuple(err["loc"][1:])
        if err["type"] == "json_invalid":
            path = ()
        out.append(FieldError(path, _code(err["type"], err.get("input", "")), _message(err)))
    return out


def _code(kind: str, value: object = "") -> str:
    if kind == "missing" or (value is None and kind.endswith("_type")):
        return "REQUIRED"
    if kind == "json_invalid":
        return "INVALID_JSON"
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type", "list_type"):
        return "INVALID_TYPE"
    return "INVALID"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing" or (err.get("input", "") is None and kind.endswith("_type")):
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
    return str(err["msg"]).removeprefix("Value error, ")


M = TypeVar("M", bound=BaseModel)


def parse_as(model: type[M], data: Any, what: str = "input") -> M:
    """Validates decoded data as `model`; a wrong shape is refused as a whole with field errors.

    Both APIs build their service commands through this, so a shape mistake gets the same
    code and path from each.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}", field_errors_from(exc.errors())) from exc


def parse_input(data: Any) -> CreateCampaignInput:
    """Validates a decoded createCampaign body."""
    return parse_as(CreateCampaignInput, data, "campaign input")


class UpdateCampaignInput(_Input):
    """A partial change of a campaign: only the fields sent are changed."""

    name: Text | None = Field(default=None, description=f"1-{MAX_NAME} characters.")
    message: Text | None = Field(default=None, description="Template.")
    scheduleDate: DateText | None = Field(
        default=None,
        description="ISO 8601 with a zone, not in the past; null clears it on a draft. The "
        "status does not change: schedule the campaign for that.",
    )
    process: Text | None = None
    contactStatus: Text | None = None
    isAutopilot: StrictBool | None = Field(
        default=None,
        description="Whether the follow-ups run; the one field a sending campaign may change.",
    )
    followUps: list[FollowUpInput] | None = Field(
        default=None, description="Replaces the follow-up steps (an empty list removes them)."
    )
    addRecipients: list[Id] = Field(default=[], description="Contact ids to add as recipients.")
    removeRecipients: list[Id] = Field(
        default=[], description="Contact ids to remove (not yet messaged ones)."
    )


class RetryFailedInput(_Input):
    """Which failures to send again."""

    codes: list[Text] | None = Field(
        default=None, description="Only these failure codes (all retryable ones if absent)."
    )


class ScheduleInput(_Input):
    """When a campaign should start sending."""

    scheduleDate: Text = Field(description="ISO 8601 with a zone, not in the past")


class CampaignFilter(_Input):
    """Which campaigns to list; every condition given must hold."""

    status: list[Text] | None = Field(
        default=None, description="Any of these statuses (REST: repeated or comma-separated)."
    )
    type: Text | None = Field(default=None, description="The channel (sms).")
    createdBy: Id | None = Field(default=None, description="User id of the creator.")
    scheduledAfter: DateText | None = Field(default=None, description="scheduleDate on or after.")
    scheduledBefore: DateText | None = Field(default=None, description="scheduleDate before.")
    createdAfter: DateText | None = Field(default=None, description="Created on or after.")
    createdBefore: DateText | None = Field(default=None, description="Created before.")
    search: Text | None = Field(default=None, description="Part of the name, any case.")


class CampaignOrderField(StrEnum):
    """What campaigns are ordered by."""

    CREATED_AT = "createdAt"
    SCHEDULE_DATE = "scheduleDate"


class SortDirection(StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


class CampaignOrder(_Input):
    """How campaigns are ordered; ties are broken by id, so pages never skip or repeat."""

    field: CampaignOrderField = Field(
        default=CampaignOrderField.CREATED_AT, description="What to order by."
    )
    direction: SortDirection = Field(default=SortDirection.DESC, description="Which way.")


class _ContactBasics(_Input):
    """A contact's own fields; its consent's follow them (`ConsentFields`)."""

    phoneNumber: Text | None = Field(
        default=None,
        description="Any format; stored as E.164; must not belong to another contact.",
    )
    firstName: Text | None = None
    lastName: Text | None = None
    email: Text | None = None
    contactStatus: Text | None = Field(default=None, description="Pipeline stage.")
    process: Text | None = Field(default=None, description="Pipeline id.")
    tags: list[Text] | None = None
    assignedTo: Id | None = Field(default=None, description="User id of the owning rep.")


class ContactFields(ConsentFields, _ContactBasics):
    """The editable fields of a contact."""


class CreateContactInput(ContactFields):
    """A new contact; the phone is required and unique in the organization."""

    phoneNumber: Text = Field(description="Any format; stored as E.164; unique.")


class ContactFilter(_Input):
    """Which contacts to list; every condition given must hold."""

    contactStatus: list[Text] | None = Field(default=None, description="Any of these stages.")
    process: Text | None = None
    tags: list[Text] | None = Field(default=None, description="Any of these tags.")
    optedOut: bool | None = None  # lax: REST reads it from a query string ("true", "1")
    search: Text | None = Field(
        default=None, description="A phone in any format (exact match), digits, or part of a name."
    )


class OptOutInput(_Input):
    """Why a contact asked not to be messaged."""

    reason: Text | None = Field(default=None, description="e.g. 'Replied STOP'")


class SenderInput(_Input):
    """One sender of the organization: a Twilio number or a messaging service."""

    phoneNumber: Text | None = Field(default=None, description="Any format; stored as E.164.")
    messagingServiceSid: Text | None = Field(
        default=None, description="MG followed by 32 hex digits."
    )


class UpdateOrganizationSettingsInput(_Input):
    """A partial change of the organization's settings: only the fields sent are changed."""

    sendWindowStart: Text | None = Field(default=None, description="HH:MM, 24-hour.")
    sendWindowEnd: Text | None = Field(
        default=None, description="HH:MM, 24-hour, or 24:00 for the end of the day."
    )
    timezone: Text | None = Field(default=None, description="IANA name, e.g. Europe/Berlin.")
    senders: list[SenderInput] | None = Field(
        default=None,
        description="Replaces the senders (admins only); SENDER_TAKEN when another "
        "organization owns one.",
    )
    helpText: Text | None = Field(
        default=None, description="The answer to HELP and INFO; empty for no answer."
    )
    attributionWindowDays: StrictInt | None = Field(
        default=None,
        description="1 to 90 days (7 by default): a reply counts for a campaign that "
        "messaged the contact at most this many days before.",
    )
    inboundContactStatus: Text | None = Field(
        default=None, description="The stage of a contact created by its own first message."
    )
    optOutFooter: Text | None = Field(
        default=None,
        description="Added to the first message a contact gets from the organization (unless "
        "it already says STOP); empty turns it off.",
    )
    frequencyCap: StrictInt | None = Field(
        default=None,
        description="Campaign messages per contact per rolling 24 hours, all campaigns "
        "together, 0 (no cap) to 50; states' own caps still apply.",
    )


class ConversationFilter(_Input):
    """Which conversations to list; every condition given must hold."""

    assignedTo: Id | None = Field(default=None, description="Owned by this rep.")
    unread: bool | None = Field(  # lax: REST reads it from a query string ("true", "1")
        default=None, description="true: with unread messages; false: all read."
    )
    campaignId: Id | None = Field(default=None, description="With a message of this campaign.")
    search: Text | None = Field(default=None, description="Part of the contact's name or phone.")


class SendMessageInput(_Input):
    """A rep's message to one contact."""

    contactId: Id = Field(description="The contact to message.")
    body: Text = Field(description="The text; placeholders as in campaigns ({{firstName|there}}).")
    idempotencyKey: Text = Field(
        description="Retries with the same key return the first message, never a second one."
    )


class SuppressNumbersInput(_Input):
    """Numbers the organization must never text: typed, pasted as CSV, or both."""

    phoneNumbers: Annotated[list[Text], _none_as(list), _one_as_list()] = Field(
        default=[], description="Numbers, in any form a contact's phone is accepted."
    )
    csv: Text | None = Field(
        default=None,
        description="CSV text: the column headed phone, phoneNumber, mobile... or else the "
        "first column, one number per row.",
    )
    reason: Text | None = Field(default=None, description="Why, as recorded with each number.")


class UnsuppressNumbersInput(_Input):
    """Numbers that may be texted again."""

    phoneNumbers: Annotated[list[Text], _none_as(list), _one_as_list()] = Field(
        default=[], description="Numbers, in any form a contact's phone is accepted."
    )
