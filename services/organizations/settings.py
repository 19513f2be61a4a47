"""An organization's settings: the sending window (quiet hours), its time zone, its rate, its
senders and how replies are handled (HELP's answer, the attribution window, an inbound contact's
stage).

Only admins change the window and the zone (the token's `admin` role); every member reads them.
The rate (messages per second) is the operator's: the deployment's default unless an
organization's document overrides it. The document is created on the first change, so
organizations that never changed anything cost no document.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.clock import is_zone, parse_clock
from core.config import Settings
from core.errors import FieldError, InvalidInput, PermissionDenied
from models import Organization
from models.campaign import DEFAULT_CONTACT_STATUS
from services.inputs import UpdateOrganizationSettingsInput
from services.organizations import senders as organization_senders
from services.organizations.quiet_hours import SendWindow
from services.storage.tenancy import Tenant

ADMIN = "admin"
ATTRIBUTION_DAYS = 7
MAX_ATTRIBUTION_DAYS = 90
DEFAULT_FREQUENCY_CAP = 3
MAX_FREQUENCY_CAP = 50
MAX_HELP_TEXT = 320
"""Two SMS segments of GSM-7."""
DEFAULT_FOOTER = "Reply STOP to opt out"
MAX_FOOTER = 120
FOOTER_FIELD = "optOutFooter"


@dataclass(frozen=True)
class OrganizationSettings:
    sendWindowStart: str
    sendWindowEnd: str
    timezone: str
    helpText: str = ""
    """The answer to HELP and INFO; empty: no answer."""
    attributionWindowDays: int = ATTRIBUTION_DAYS
    """A reply counts for a campaign that messaged the contact at most this many days before."""
    inboundContactStatus: str = DEFAULT_CONTACT_STATUS
    """The stage of a contact created because it texted first."""
    optOutFooter: str = DEFAULT_FOOTER
    """Added to the first message a contact gets from the organization; empty: never."""
    frequencyCap: int = DEFAULT_FREQUENCY_CAP
    """Campaign messages per contact per rolling 24 hours, all campaigns together (0: none)."""


def defaults_from(settings: Settings) -> OrganizationSettings:
    """What an organization that changed nothing gets: the service's configured defaults."""
    return OrganizationSettings(
        sendWindowStart=settings.send_window_start,
        sendWindowEnd=settings.send_window_end,
        timezone=settings.default_timezone,
        frequencyCap=settings.frequency_cap_per_day,
    )


async def organization_settings(
    tenant: Tenant, defaults: OrganizationSettings
) -> OrganizationSettings:
    """The organization's settings, its unset ones taken from `defaults`."""
    rows = await tenant.raw_find(Organization, {"_id": tenant.organization_id}).to_list()
    stored = rows[0] if rows else {}
    return OrganizationSettings(
        sendWindowStart=stored.get("sendWindowStart") or defaults.sendWindowStart,
        sendWindowEnd=stored.get("sendWindowEnd") or defaults.sendWindowEnd,
        timezone=stored.get("timezone") or defaults.timezone,
        helpText=stored.get("helpText") or defaults.helpText,
        attributionWindowDays=int(
            stored.get("attributionWindowDays") or defaults.attributionWindowDays
        ),
        inboundContactStatus=stored.get("inboundContactStatus") or defaults.inboundContactStatus,
        optOutFooter=footer_of(stored, defaults.optOutFooter),
        frequencyCap=_cap(stored, defaults),
    )


def _cap(stored: dict[str, Any], defaults: OrganizationSettings) -> int:
    own = stored.get("frequencyCap")
    return int(own) if isinstance(own, int) else defaults.frequencyCap


def footer_of(stored: dict[str, Any], default: str = DEFAULT_FOOTER) -> str:
    """The stored footer, where one was set (empty included: it turns the footer off)."""
    value = stored.get(FOOTER_FIELD)
    return value if isinstance(value, str) else default


async def opt_out_footer(tenant: Tenant) -> str:
    """The organization's footer (one read by id)."""
    rows = await tenant.raw_find(
        Organization, {"_id": tenant.organization_id}, {FOOTER_FIELD: 1}
    ).to_list()
    return footer_of(rows[0] if rows else {})


async def send_window(tenant: Tenant, defaults: OrganizationSettings) -> SendWindow:
    """The window the dispatcher keeps for this organization (one read by id)."""
    current = await organization_settings(tenant, defaults)
    start = parse_clock(current.sendWindowStart)
    end = parse_clock(current.sendWindowEnd, end=True)
    assert start is not None and end is not None  # checked when they were written
    return SendWindow(start, end, current.timezone)


@dataclass(frozen=True)
class SendingRules:
    """What the dispatcher keeps for one organization."""

    window: SendWindow
    rate_per_second: int | None
    """Messages the organization may start per second across all dispatchers (None: no
    limit)."""
    frequency_cap: int | None = None
    """Campaign messages per contact per rolling 24 hours (None: no cap of its own)."""


async def sending_rules(
    tenant: Tenant, defaults: OrganizationSettings, default_rate: int | None
) -> SendingRules:
    """The organization's window and rate, its own where it set them (one read by id)."""
    rows = await tenant.raw_find(Organization, {"_id": tenant.organization_id}).to_list()
    stored = rows[0] if rows else {}
    start = parse_clock(stored.get("sendWindowStart") or defaults.sendWindowStart)
    end = parse_clock(stored.get("sendWindowEnd") or defaults.sendWindowEnd, end=True)
    assert start is not None and end is not None  # checked when they were written
    window = SendWindow(start, end, stored.get("timezone") or defaults.timezone)
    own = stored.get(RATE_FIELD)
    rate = int(own) if isinstance(own, int) and own > 0 else default_rate
    return SendingRules(window, rate, _cap(stored, defaults) or None)


RATE_FIELD = "ratePerSecond"


async def rate_per_second(tenant: Tenant, default_rate: int | None) -> int | None:
    """The organization's own rate, else `default_rate` (one read by id, of that field)."""
    rows = await tenant.raw_find(
        Organization, {"_id": tenant.organization_id}, {RATE_FIELD: 1}
    ).to_list()
    own = rows[0].get(RATE_FIELD) if rows else None
    return int(own) if isinstance(own, int) and own > 0 else default_rate


async def set_rate_per_second(tenant: Tenant, rate: int | None) -> None:
    """Gives the organization its own rate limit, or (None) the deployment's back: an
    operator's setting (a provider account's throughput), so it takes no caller."""
    if rate is not None and rate < 1:
        raise InvalidInput(
            "Invalid organization settings",
            [FieldError((RATE_FIELD,), "INVALID_RATE", "Use a whole number of at least 1")],
        )
    change: dict[str, Any] = (
        {"$set": {RATE_FIELD: rate, "updatedAt": Tenant.now()}}
        if rate is not None
        else {"$unset": {RATE_FIELD: ""}, "$set": {"updatedAt": Tenant.now()}}
    )
    await tenant.update_one(
        Organization,
        {"_id": tenant.organization_id},
        {**change, "$setOnInsert": {"createdAt": Tenant.now()}},
        upsert=True,
    )


async def update_settings(
    tenant: Tenant,
    defaults: OrganizationSettings,
    data: UpdateOrganizationSettingsInput,
    *,
    phone_region: str = "US",
) -> OrganizationSettings:
    """Changes the fields sent; all are checked first, and nothing is written if one is wrong."""
    if ADMIN not in tenant.principal.roles:
        raise PermissionDenied("Only an organization admin can change its settings")
    sent: dict[str, Any] = {
        name: value.strip()
        for name, value in (
            ("sendWindowStart", data.sendWindowStart),
            ("sendWindowEnd", data.sendWindowEnd),
            ("timezone", data.timezone),
        )
        if value
    }
    # The window is checked whole (a new start against the current end), but only the fields
    # sent are stored: the others keep following the service's defaults.
    wanted = {**asdict(await organization_settings(tenant, defaults)), **sent}
    errors: list[FieldError] = []
    start = parse_clock(wanted["sendWindowStart"])
    end = parse_clock(wanted["sendWindowEnd"], end=True)
    if start is None:
        errors.append(
            FieldError(("sendWindowStart",), "INVALID_TIME", "Use HH:MM, 24-hour (e.g. 08:00)")
        )
    if end is None:
        message = "Use HH:MM, 24-hour (e.g. 21:00; 24:00 for the end of the day)"
        errors.append(FieldError(("sendWindowEnd",), "INVALID_TIME", message))
    if start is not None and start == end:
        message = "The window must not be empty: start and end differ (00:00 to 24:00 is all day)"
        errors.append(FieldError(("sendWindowEnd",), "EMPTY_WINDOW", message))
    if not is_zone(wanted["timezone"]):
        message = "Use an IANA time zone name (e.g. Europe/Berlin)"
        errors.append(FieldError(("timezone",), "INVALID_TIMEZONE", message))
    errors.extend(_reply_settings(data, sent))
    wanted.update(sent)
    senders: list[organization_senders.SenderEntry] = []
    if data.senders is not None:
        senders, sender_errors = organization_senders.check_senders(data.senders, phone_region)
        errors.extend(sender_errors)
    if errors:
        raise InvalidInput("Invalid organization settings", errors)
    if data.senders is not None:
        await organization_senders.replace_senders(tenant, senders)
    await tenant.update_one(
        Organization,
        {"_id": tenant.organization_id},
        {
            "$set": {**sent, "updatedAt": Tenant.now()},
            "$setOnInsert": {"createdAt": Tenant.now()},
        },
        upsert=True,
    )
    return OrganizationSettings(**wanted)


def _reply_settings(
    data: UpdateOrganizationSettingsInput, sent: dict[str, Any]
) -> list[FieldError]:
    """Checks the reply settings sent and adds them to `sent`; an empty `helpText` is kept
    (it turns the answer off)."""
    errors: list[FieldError] = []
    if data.helpText is not None:
        text = data.helpText.strip()
        if len(text) > MAX_HELP_TEXT:
            message = f"At most {MAX_HELP_TEXT} characters"
            errors.append(FieldError(("helpText",), "TOO_LONG", message))
        sent["helpText"] = text
    if data.attributionWindowDays is not None:
        days = data.attributionWindowDays
        if not 1 <= days <= MAX_ATTRIBUTION_DAYS:
            message = f"Between 1 and {MAX_ATTRIBUTION_DAYS} days"
            errors.append(FieldError(("attributionWindowDays",), "OUT_OF_RANGE", message))
        sent["attributionWindowDays"] = days
    if data.frequencyCap is not None:
        if not 0 <= data.frequencyCap <= MAX_FREQUENCY_CAP:
            message = f"Between 0 (no cap) and {MAX_FREQUENCY_CAP} messages a day"
            errors.append(FieldError(("frequencyCap",), "OUT_OF_RANGE", message))
        sent["frequencyCap"] = data.frequencyCap
    if data.inboundContactStatus is not None and data.inboundContactStatus.strip():
        sent["inboundContactStatus"] = data.inboundContactStatus.strip()[:200]
    if data.optOutFooter is not None:
        footer = data.optOutFooter.strip()
        if len(footer) > MAX_FOOTER:
            message = f"At most {MAX_FOOTER} characters"
            errors.append(FieldError((FOOTER_FIELD,), "TOO_LONG", message))
        sent[FOOTER_FIELD] = footer
    return errors
