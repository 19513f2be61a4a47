"""GraphQL types for the organization's settings."""

from __future__ import annotations

import strawberry

from schema.derive import graphql_input
from schema.errors import Payload
from services import inputs as commands


@strawberry.type(description="A number or messaging service the organization sends from.")
class Sender:
    phoneNumber: str | None = strawberry.field(description="E.164, when a number.")
    messagingServiceSid: str | None = strawberry.field(
        description="The Twilio messaging service, when one."
    )


@graphql_input(
    commands.SenderInput,
    description="A sender: give a phone number or a messaging service SID.",
    partial=True,
)
class SenderInput:
    pass


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
    optOutFooter: str = strawberry.field(
        description="Added to the first message a contact gets from the organization (unless "
        "its text already says STOP); empty: never."
    )
    frequencyCap: int = strawberry.field(
        description="Campaign messages per contact per rolling 24 hours, all campaigns "
        "together (0: no cap; some states cap lower for their numbers). A recipient over it "
        "waits."
    )
    senders: list[Sender] = strawberry.field(
        description="The numbers and messaging services replies are routed by (empty: the "
        "deployment's shared sender)."
    )


@graphql_input(
    commands.UpdateOrganizationSettingsInput,
    description="The settings to change; fields left out stay as they are.",
    partial=True,
)
class UpdateOrganizationSettingsInput:
    pass


@strawberry.type(description="The result of updateOrganizationSettings.")
class OrganizationSettingsPayload(Payload):
    settings: OrganizationSettings | None = strawberry.field(
        default=None, description="The settings now, unless refused."
    )
