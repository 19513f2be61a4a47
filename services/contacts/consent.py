"""A contact's consent record: its source, when, and a reference to the proof.

Every way a contact is created records a source (a rep's form `manual`, a campaign's list
`import`, a first text `inbound`) unless the caller names one, so an audit always finds one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.errors import FieldError, Path
from models.contact import ConsentSource
from services.dates import parse_instant
from services.inputs import ConsentFields

INVALID_SOURCE = "INVALID_CONSENT_SOURCE"
MAX_FILE = 200
CLOCK_SKEW = timedelta(minutes=5)
"""A `consentAt` this far ahead of the server's clock is taken as a client's clock drift."""


def consent_fields(
    input: ConsentFields | None,
    *,
    default: ConsentSource | None,
    now: datetime,
    at: Path = (),
    errors: list[FieldError],
) -> dict[str, Any]:
    """Returns the consent fields to store, the problems going to `errors`.

    Only the fields sent are returned, except that a source (sent, or `default` for a new
    contact) comes with a time (`now` unless sent), and clearing the source clears the rest.
    """
    given = input.model_fields_set if input is not None else set()
    fields: dict[str, Any] = {}
    if "consentSource" in given and input is not None:
        raw = (input.consentSource or "").strip()
        try:
            fields["consentSource"] = ConsentSource(raw.lower()) if raw else None
        except ValueError:
            choices = ", ".join(s.value for s in ConsentSource)
            errors.append(
                FieldError((*at, "consentSource"), INVALID_SOURCE, f"Use one of: {choices}")
            )
    elif default is not None:
        fields["consentSource"] = default
    if "consentAt" in given and input is not None:
        when = parse_instant(input.consentAt, (*at, "consentAt"), errors)
        if when is not None and when > now + CLOCK_SKEW:
            errors.append(
                FieldError((*at, "consentAt"), "DATE_IN_FUTURE", "consentAt is in the future")
            )
        fields["consentAt"] = when
    if "consentFile" in given and input is not None:
        reference = (input.consentFile or "").strip()
        if len(reference) > MAX_FILE:
            message = f"At most {MAX_FILE} characters"
            errors.append(FieldError((*at, "consentFile"), "TOO_LONG", message))
        fields["consentFile"] = reference or None
    if fields.get("consentSource") is not None and fields.get("consentAt") is None:
        fields["consentAt"] = now
    if "consentSource" in fields and fields["consentSource"] is None:
        fields.update(consentAt=None, consentFile=None)
    return fields
