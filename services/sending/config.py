"""How one dispatcher works: its limits, its clock and its name among the others."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.config import Settings
from models.base import utcnow
from services.organizations import settings as organizations


@dataclass(frozen=True)
class DispatchConfig:
    """How one dispatcher works; every process may differ (a worker's owner name, say)."""

    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    """How often the dispatcher looks for campaigns to start and to send."""
    max_in_flight: int = 10
    """Sends one dispatcher has open at once."""
    parallel_batches: int = 4
    """Batches of one organization this dispatcher sends at once (a batch waits mostly on the
    database, so a few together keep the provider busy)."""
    max_batches: int = 32
    """Batches this dispatcher holds at once, all organizations together."""
    rate_per_second: int | None = None
    """Messages an organization may start per second, across all dispatchers, unless it has a
    rate of its own (None: no limit)."""
    chunk: int = 20
    """Recipients sent between two looks at the campaign's status (pause and cancel); also the
    most one rate slot lets start."""
    send_attempts: int = 4
    """Tries per message on transient errors, with exponential backoff and jitter."""
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    defaults: organizations.OrganizationSettings = field(
        default_factory=lambda: organizations.defaults_from(Settings.model_construct())
    )
    """Quiet hours (and their zone for numbers that span zones) of organizations that set
    none."""
    minute_seconds: float = 60.0
    """The length of a follow-up delay's minute (shorter only in development and tests)."""
    clock: Callable[[], datetime] = utcnow
    """What time it is (leases, due dates, quiet hours, rate slots); tests control it."""
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )


def config_from(settings: Settings) -> DispatchConfig:
    """The dispatcher settings of this process."""
    return DispatchConfig(
        lease_seconds=settings.dispatch_lease_seconds,
        poll_seconds=settings.dispatch_poll_seconds,
        max_in_flight=settings.dispatch_max_in_flight,
        rate_per_second=settings.dispatch_rate_per_second or None,
        minute_seconds=settings.follow_up_minute_seconds,
        defaults=organizations.defaults_from(settings),
    )
