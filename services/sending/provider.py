"""What the dispatcher needs from an SMS provider, and how a provider says no.

Every send carries an idempotency key (the recipient's id). A provider that `honours_idempotency`
answers a repeated key with the first send's message id instead of sending again, so a recipient
whose outcome is unknown after a crash may be retried through it; through any other provider such
a recipient is marked `unknown` and never resent.
"""

from __future__ import annotations

from typing import Protocol

from bson import ObjectId


class SendError(Exception):
    """The provider refused a message. `transient` ones (rate limits, 5xx, a connection that
    never opened) may be retried; permanent ones (an invalid or unsubscribed number) never are.
    `unknown`: the request may have reached the provider (a read timeout), so whether the
    message went out cannot be known; it is never retried through a provider without keys."""

    def __init__(self, code: str, message: str, *, transient: bool, unknown: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient
        self.unknown = unknown


UNSUBSCRIBED = "UNSUBSCRIBED"
"""The code of a provider's refusal because the recipient opted out with it (Twilio 21610):
the contact is opted out here too, and the recipient `skipped`."""


class Provider(Protocol):
    """What the dispatcher needs from a provider."""

    name: str
    honours_idempotency: bool

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        """Sends one message of `organization` from `sender` (an organization's sender key,
        `phone:+1…` or `service:MG…`; None: the deployment's own); returns the provider's
        message id or raises `SendError`. A provider that reports delivery later names both
        `key` and `organization` in its report, so the report is read within one organization
        (one shard) rather than looked for in all of them."""
        ...
