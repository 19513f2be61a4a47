"""GraphQL types for the organization's settings."""

from __future__ import annotations

import strawberry

from schema.errors import Payload


@strawberry.type(description="How the organization sends: its window (quiet hours) and zone.")
class OrganizationSettings:
    sendWindowStart: str = strawberry.field(
        description="Messages go out from this local time of each recipient (HH:MM, 24-hour)."
    )
    sendWindowEnd: str = strawberry.field(
        description="...until this one, exclusive; 24:00 is the end of the day (00:00 to 24:00 "
        "sends at any hour). May cross midnight (22:00 to 06:00)."
    )
    timezone: str = strawberry.field(
        description="IANA zone for numbers whose zone the number does not tell (mobile ranges "
        "spanning zones)."
    )


@strawberry.input(description="The settings to change; fields left out stay as they are.")
class UpdateOrganizationSettingsInput:
    sendWindowStart: str | None = strawberry.field(default=strawberry.UNSET, description="HH:MM.")
    sendWindowEnd: str | None = strawberry.field(
        default=strawberry.UNSET, description="HH:MM, or 24:00 for the end of the day."
    )
    timezone: str | None = strawberry.field(
        default=strawberry.UNSET, description="IANA name, e.g. Europe/Berlin."
    )


@strawberry.type(description="The result of updateOrganizationSettings.")
class OrganizationSettingsPayload(Payload):
    settings: OrganizationSettings | None = strawberry.field(
        default=None, description="The settings now, unless refused."
    )
