"""Simulated replies, for development: a share of the messages the simulated provider accepts
is answered, after a random delay, by a contact who is interested, not interested, asks for
HELP or says STOP.

A reply goes through `inbound.receive`, the service behind Twilio's inbound webhook, so it is
routed by the sender it answers, stored, attributed, logged for the inbox and pushed over
`messageReceived` exactly as a real one would be. Never on outside development and tests
(`Settings` refuses a rate elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

from core.config import Settings
from services.conversations import inbound, routing
from services.sending.provider import Provider
from services.sending.providers import SimulatedProvider
from services.sending.providers import provider_from as plain_provider_from

logger = logging.getLogger(__name__)

ANSWERS: tuple[tuple[str, int], ...] = (
    ("Yes, call me this afternoon", 3),
    ("Interested! What does it cost?", 2),
    ("Sounds good, tell me more", 2),
    ("No thanks", 2),
    ("Not interested right now", 1),
    ("HELP", 1),
    ("STOP", 1),
)
"""What simulated contacts answer, with weights: mostly interest, some refusals, keywords."""


class Replier:
    """Answers a share of accepted messages in the background of this process."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self.settings = settings
        self.random = random.Random(seed)
        self.tasks: set[asyncio.Task[None]] = set()
        """Replies on their way (kept so none is collected before it arrives)."""

    def on_accepted(self, to: str, body: str, sender: str | None) -> None:
        if self.random.random() >= self.settings.simulated_reply_rate:
            return
        texts, weights = zip(*ANSWERS, strict=True)
        answer = self.random.choices(texts, weights)[0]
        # At least a quarter of the longest delay: the send is recorded first, as in life.
        delay = self.random.uniform(
            self.settings.simulated_reply_delay_s / 4, self.settings.simulated_reply_delay_s
        )
        task = asyncio.get_running_loop().create_task(self.reply(to, answer, sender, delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def reply(self, phone: str, text: str, sender: str | None, delay_s: float) -> None:
        """`phone` answers `text` to `sender` (the key it was messaged from; None: the
        deployment's) after `delay_s`."""
        await asyncio.sleep(delay_s)
        key = sender or routing.shared_sender(self.settings)
        if key is None:
            logger.info("simulated reply from %s dropped: no sender to answer to", phone)
            return
        kind, _, value = key.partition(":")
        message = inbound.Inbound(
            message_sid=f"SMsim{uuid.uuid4().hex}",
            from_phone=phone,
            to=value if kind == "phone" else "",
            body=text,
            messaging_service=value if kind == "service" else None,
        )
        try:
            received = await inbound.receive(message, self.settings)
        except Exception:  # a development aid must never take the sender down
            logger.exception("simulated reply from %s failed", phone)
            return
        logger.info("simulated reply from %s: %r (%s)", phone, text, received.outcome.value)


def provider_from(settings: Settings) -> Provider:
    """The provider `DISPATCH_PROVIDER` names; the simulated one answers a share of its
    messages when `SIMULATED_REPLY_RATE` is set."""
    provider = plain_provider_from(settings)
    if isinstance(provider, SimulatedProvider) and settings.simulated_reply_rate:
        provider.on_accepted = Replier(settings).on_accepted
    return provider
