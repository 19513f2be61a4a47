"""The SMS providers: a log (the default), a simulated one (tests, benchmarks) and Twilio."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bson import ObjectId

from core.config import Settings
from services.sending.provider import Provider, SendError
from services.sending.twilio import TwilioProvider

logger = logging.getLogger(__name__)


class LogProvider:
    """Writes one JSON line per message to the log: the default for `make run`. It keeps no
    keys, so a send interrupted by a crash is reported `unknown`, not repeated."""

    name = "log"
    honours_idempotency = False

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        message_id = f"log-{uuid.uuid4().hex}"
        entry = {"provider": "log", "to": to, "from": sender, "body": body, "key": key}
        logger.info(json.dumps({**entry, "id": message_id}))
        return message_id


@dataclass
class SimulatedProvider:
    """A stand-in for a real gateway, for tests and benchmarks: configurable latency and failure
    rate, idempotency keys honoured, and a durable ledger of every message it accepted.

    The ledger is a JSON-lines file shared by every process using it (as a real provider is
    shared): each send takes an exclusive `flock`, catches up on lines other processes appended,
    answers a known key with its first message id, else appends. So "every recipient exactly once
    in the ledger" is checkable after workers were killed at random.

    `fail` maps a phone number to a failure: `"permanent:CODE"` always, `"transient:CODE:N"` for
    its first N attempts.
    """

    ledger: Path
    latency_s: float = 0.0
    failure_rate: float = 0.0
    fail: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    on_accepted: Callable[[str, str, str | None], None] | None = None
    """Told `(to, body, sender)` of each new message it accepts (simulated replies hook in)."""
    name: str = "simulated"
    honours_idempotency: bool = True
    _known: dict[str, str] = field(default_factory=dict, init=False)
    _offset: int = field(default=0, init=False)
    _attempts: dict[str, int] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        self.ledger.touch(exist_ok=True)

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self._maybe_fail(to)
        async with self._lock:  # one thread at a time holds the file lock
            message_id, new = await asyncio.to_thread(self._record, to, body, key, sender)
        if new and self.on_accepted is not None:
            self.on_accepted(to, body, sender)
        return message_id

    def attempts(self, to: str) -> int:
        """How many times a number given a `fail` rule was tried, failed tries included."""
        return self._attempts.get(to, 0)

    def _maybe_fail(self, to: str) -> None:
        rule = self.fail.get(to)
        if rule is not None:
            kind, code, *rest = rule.split(":")
            attempts = self._attempts[to] = self._attempts.get(to, 0) + 1
            if kind == "permanent" or attempts <= int(rest[0] if rest else 1):
                raise SendError(code, f"simulated {kind} failure", transient=kind == "transient")
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise SendError("SIMULATED_5XX", "simulated provider error", transient=True)

    def _record(self, to: str, body: str, key: str, sender: str | None) -> tuple[str, bool]:
        with self.ledger.open("r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(self._offset)
                for line in handle:
                    if line.endswith("\n"):
                        entry = json.loads(line)
                        self._known[entry["key"]] = entry["id"]
                self._offset = handle.tell()
                if key in self._known:
                    return self._known[key], False
                message_id = f"sim-{uuid.uuid4().hex}"
                entry = {"key": key, "id": message_id, "to": to, "from": sender, "body": body}
                line = json.dumps(entry) + "\n"
                handle.seek(0, os.SEEK_END)
                handle.write(line)
                handle.flush()
                self._offset = handle.tell()
                self._known[key] = message_id
                return message_id, True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_ledger(path: Path) -> list[dict[str, str]]:
    """Every message a simulated provider accepted, in order (for tests and the crash run)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.endswith("\n")]


def provider_from(settings: Settings) -> Provider:
    """The provider `DISPATCH_PROVIDER` names."""
    if settings.dispatch_provider == "twilio":
        return TwilioProvider.from_settings(settings)
    if settings.dispatch_provider == "simulated":
        return SimulatedProvider(
            Path(settings.simulated_ledger),
            latency_s=settings.simulated_latency_ms / 1000,
            failure_rate=settings.simulated_failure_rate,
        )
    return LogProvider()
