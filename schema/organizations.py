"""GraphQL types for the organization's settings."""

from __future__ import annotations

import strawberry

from schema.errors import Payload


@strawberry.type(description="A number or messaging service the organization sends from.")
class Sender:
    phoneNumber: str | None = strawberry.field(description="E.164, when a number.")
    messagingServiceSid: str | None = strawberry.field(
        description="The Twilio messaging service, when one."
    )


@strawberry.input(description="A sender: give a phone number or a messaging service SID.")
class SenderInput:
    phoneNumber: str | None = strawberry.field(
        default=strawberry.UNSET, description="Any format; stored as E.164."
    )
    messagingServiceSid: str | None = strawberry.field(
        default=strawberry.UNSET, description="MG followed by 32 hex digits."
    )


@strawberry.type(
    description="How the organization sends: its window (quiet hours), zone, senders and how "
    "replies are handled."
)
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
    helpText: str = strawberry.field(
        description="The answer to a HELP or INFO message; empty: no answer."
    )
    attributionWindowDays: int = strawberry.field(
        description="A reply counts for the latest campaign that messaged the contact from that "
        "sender at most this many days before."
    )
    inboundContactStatus: str = strawberry.field(
        description="The stage of a contact created because it texted first."
    )
    senders: list[Sender] = strawberry.field(
        description="The numbers and messaging services replies are routed by (empty: the "
        "deployment's shared sender)."
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
    senders: list[SenderInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the senders (admins only); SENDER_TAKEN when another "
        "organization owns one.",
    )
    helpText: str | None = strawberry.field(
        default=strawberry.UNSET, description="The answer to HELP and INFO; empty for none."
    )
    attributionWindowDays: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 90 days (7 by default)."
    )
    inboundContactStatus: str | None = strawberry.field(
        default=strawberry.UNSET, description='e.g. "New Lead" (the default).'
    )


@strawberry.type(description="The result of updateOrganizationSettings.")
class OrganizationSettingsPayload(Payload):
    settings: OrganizationSettings | None = strawberry.field(
        default=None, description="The settings now, unless refused."
    )
