"""Creating, changing, deleting and opting out contacts.

The phone is unique in the organization: a new contact or a changed phone that is already
taken is refused with `DUPLICATE_PHONE`, naming the contact that has it. Changes are numbered
(`services.storage.history`),
so two reps editing one contact at once both land, one after the other.
Deleting a contact leaves the campaigns that messaged it intact: their recipients keep the
contact id and status, and `Recipient.contact` becomes null.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, OperationFailure

from core.config import Settings
from core.errors import Conflict, FieldError, InvalidInput
from models import Contact, User
from models.contact import ConsentSource
from services.contacts.consent import consent_fields
from services.contacts.queries import get_contact
from services.contacts.records import PhoneError, contacts_by_phones, normalize_phone
from services.inputs import ContactFields, CreateContactInput
from services.storage import history, positions, tallies
from services.storage.history import Planned
from services.storage.tenancy import Tenant

MAX_TAGS = 50
MAX_TEXT = 200


async def create_contact(tenant: Tenant, input: CreateContactInput, settings: Settings) -> Contact:
    """Creates a contact; its phone must not belong to another contact of the organization."""
    fields = await _check(
        tenant, input, input.model_fields_set | {"phoneNumber"}, settings, ConsentSource.MANUAL
    )
    page = await positions.page_for_one(tenant)
    contact = Contact(organizationId=tenant.organization_id, page=page, **fields)
    try:
        created = await tenant.insert(contact)
    except DuplicateKeyError:
        raise await _duplicate(tenant, fields["phoneNumber"]) from None
    await tallies.add(tenant, tallies.CONTACTS, 1)
    return created


async def update_contact(
    tenant: Tenant, contact_id: str, input: ContactFields, settings: Settings
) -> Contact:
    """Changes the fields sent; a new phone must not belong to another contact."""
    fields = await _check(tenant, input, input.model_fields_set, settings)

    async def plan(contact: Contact) -> Planned:
        if "phoneNumber" in fields and fields["phoneNumber"] != contact.phoneNumber:
            holders = await contacts_by_phones(tenant, [fields["phoneNumber"]])
            if holders:
                raise await _duplicate(tenant, fields["phoneNumber"])
        return Planned("update", {k: v for k, v in fields.items() if getattr(contact, k) != v})

    try:
        contact, _ = await history.change(tenant, Contact, contact_id, plan, what="contact")
    except (DuplicateKeyError, OperationFailure) as exc:
        # The phone was taken between the check and the write (FerretDB reports it as a
        # plain OperationFailure, MongoDB as a duplicate key).
        if "phoneNumber" not in fields:
            raise
        raise await _duplicate(tenant, fields["phoneNumber"]) from exc
    return contact


ContactDeleted = Callable[[Tenant, ObjectId], Awaitable[None]]
_deleted_listeners: list[ContactDeleted] = []


def on_contact_deleted(listener: ContactDeleted) -> ContactDeleted:
    """Registers `listener` (once) for every deleted contact: the conversations domain, which
    sits above contacts and may not be imported here, drops what it derived from the contact."""
    if listener not in _deleted_listeners:
        _deleted_listeners.append(listener)
    return listener


async def delete_contact(tenant: Tenant, contact_id: str) -> str:
    """Deletes a contact; campaigns that included it keep their recipients and stats, and its
    messages stay with them (a later message from the number starts a new contact)."""
    contact = await get_contact(tenant, contact_id)
    assert contact.id is not None
    deleted = await tenant.delete_many(Contact, {"_id": contact.id})
    await tallies.add(tenant, tallies.CONTACTS, -deleted)
    await history.forget(tenant, contact.id)
    if deleted:
        for listener in _deleted_listeners:
            await listener(tenant, contact.id)
    return str(contact.id)


async def set_opt_out(
    tenant: Tenant, contact_id: str, opted_out: bool, reason: str | None = None
) -> Contact:
    """Records that a contact opted out (when, and why) or back in; repeating it is a no-op."""

    async def plan(contact: Contact) -> Planned:
        if contact.optedOut == opted_out:
            return Planned("opt-out" if opted_out else "opt-in")
        return Planned(
            "opt-out" if opted_out else "opt-in",
            {
                "optedOut": opted_out,
                "optedOutAt": tenant.now() if opted_out else None,
                "optOutReason": (reason or "").strip()[:MAX_TEXT] or None if opted_out else None,
            },
        )

    contact, _ = await history.change(tenant, Contact, contact_id, plan, what="contact")
    return contact


async def _check(
    tenant: Tenant,
    input: ContactFields,
    given: set[str],
    settings: Settings,
    consent: ConsentSource | None = None,
) -> dict[str, Any]:
    """Returns the given fields normalised, or refuses them all with field errors; a new
    contact's consent source defaults to `consent`."""
    errors: list[FieldError] = []
    fields = consent_fields(input, default=consent, now=tenant.now(), errors=errors)
    for name in ("firstName", "lastName"):
        if name in given:
            fields[name] = _text(getattr(input, name), name, errors) or ""
    for name in ("email", "contactStatus", "process"):
        if name in given:
            fields[name] = _text(getattr(input, name), name, errors)
    if "phoneNumber" in given:
        try:
            fields["phoneNumber"] = normalize_phone(
                input.phoneNumber, settings.default_phone_region
            )
        except PhoneError as exc:
            errors.append(FieldError(("phoneNumber",), exc.code, exc.message))
    if "tags" in given:
        tags = list(dict.fromkeys(t.strip() for t in input.tags or [] if t.strip()))
        if len(tags) > MAX_TAGS:
            errors.append(FieldError(("tags",), "TOO_MANY", f"At most {MAX_TAGS} tags"))
        fields["tags"] = tags
    if "assignedTo" in given:
        fields["assignedTo"] = await _assignee(tenant, input.assignedTo, errors)
    if errors:
        raise InvalidInput("Invalid contact", errors)
    return fields


def _text(value: str | None, name: str, errors: list[FieldError]) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        errors.append(FieldError((name,), "TOO_LONG", f"At most {MAX_TEXT} characters"))
    return text or None


async def _assignee(
    tenant: Tenant, raw: str | None, errors: list[FieldError]
) -> PydanticObjectId | None:
    if raw is None:
        return None
    if not ObjectId.is_valid(raw):
        errors.append(FieldError(("assignedTo",), "INVALID_ID", f"'{raw}' is not an id"))
        return None
    user_id = PydanticObjectId(raw)
    if not await users_of_organization(tenant, [user_id]):
        errors.append(
            FieldError(("assignedTo",), "UNKNOWN_USER", f"No user {raw} in your organization")
        )
    return user_id


async def users_of_organization(tenant: Tenant, ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Returns those of `ids` that are users of the caller's organization: the caller, and
    every rep with a `User` there. Contacts and campaigns are assigned only to these."""
    caller = PydanticObjectId(tenant.principal.user_id)
    others = [i for i in ids if i != caller]
    users = await tenant.raw_find_in(User, "userId", others, {"userId": 1}) if others else []
    return {u["userId"] for u in users} | ({caller} if caller in ids else set())


async def _duplicate(tenant: Tenant, phone: str) -> Conflict:
    holders = await contacts_by_phones(tenant, [phone])
    holder = next(iter(holders.values()), None)
    which = f" ({holder.id})" if holder else ""
    message = f"Another contact{which} already has the phone {phone}"
    return Conflict(message, [FieldError(("phoneNumber",), "DUPLICATE_PHONE", message)])
