"""An organization's own settings."""

from __future__ import annotations

from beanie import PydanticObjectId

from models.base import TenantDocument


class Organization(TenantDocument):
    """One per organization, `_id` = `organizationId`; absent until an admin changes a setting
    (the defaults apply until then)."""

    id: PydanticObjectId | None = None
    sendWindowStart: str | None = None
    """Messages go out from this local time of the recipient (`HH:MM`)..."""
    sendWindowEnd: str | None = None
    """...until this one (exclusive; `24:00` is the end of the day); a window may cross
    midnight (`22:00` to `06:00`). Unset fields take the service's defaults
    (`SEND_WINDOW_START`, `SEND_WINDOW_END`)."""
    timezone: str | None = None
    """For numbers whose zone the number does not tell (a mobile range spanning zones); the
    service's `DEFAULT_TIMEZONE` when unset."""

    helpText: str | None = None
    """The answer to HELP and INFO (empty: none)."""
    attributionWindowDays: int | None = None
    """How long after a campaign's message a reply counts for it (7 days when unset)."""
    inboundContactStatus: str | None = None
    """The stage of a contact created by its own first message ("New Lead" when unset)."""

    class Settings:
        name = "organizations"
        shard_key = ("organizationId",)
