"""Showing a rep what one contact would receive, with the same checks creation applies."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import FieldError, InvalidInput
from models import Contact
from services.campaigns.creation import check_template
from services.campaigns.recipients import values_of
from services.campaigns.templates import TemplateError, sms_cost
from services.contacts.records import ContactRef
from services.organizations.footer import footer_for, had_first, with_footer
from services.organizations.settings import opt_out_footer
from services.storage.tenancy import Tenant


@dataclass(frozen=True)
class Preview:
    """The rendered text and what it costs; `missing` names placeholders without a value."""

    text: str
    encoding: str
    segments: int
    characters: int
    missing: list[str]


async def preview_message(tenant: Tenant, message: str, contact_id: str) -> Preview:
    """Renders `message` for one contact of the caller's organization."""
    errors: list[FieldError] = []
    template = check_template(message, errors)
    contact = await tenant.get(Contact, contact_id)
    if contact is None:
        errors.append(FieldError(("contactId",), "NOT_FOUND", "No contact with that id"))
    if errors or template is None or contact is None:
        raise InvalidInput("Cannot preview this message", errors)
    ref = ContactRef(
        id=contact.id,  # type: ignore[arg-type]
        firstName=contact.firstName,
        lastName=contact.lastName,
        phoneNumber=contact.phoneNumber,
        email=contact.email,
    )
    try:
        rendered = template.render(values_of(ref))
    except TemplateError as exc:  # this contact's values make it too long
        raise InvalidInput(
            "Cannot preview this message",
            [FieldError(("message",), code, text) for code, text in exc.problems],
        ) from exc
    text = rendered.text
    footer = footer_for(template.text, await opt_out_footer(tenant))
    if footer and not rendered.missing and not await had_first(tenant, ref.id):
        text = with_footer(text, footer)  # what this contact's first message would carry
    cost = sms_cost(text)
    return Preview(
        text=text,
        encoding=cost.encoding,
        segments=cost.segments,
        characters=cost.characters,
        missing=list(rendered.missing),
    )
