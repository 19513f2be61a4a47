"""Twilio: sending through its Messages API, and checking the signature of its webhooks.

The official `twilio` package is used for what it does best here, `RequestValidator` (the
webhook signature scheme). Its REST client is not: it is synchronous, and its async variant
brings aiohttp as a second HTTP stack next to httpx; one form POST per message is all the
dispatcher needs, and retries are the dispatcher's (`tenacity`), not the client's.

Twilio keeps no idempotency keys for `POST /Messages`: a request that may have reached it (a
read timeout, a dropped connection after sending) is reported `unknown`, never retried, and a
recipient left `sending` by a dispatcher that died is marked `unknown` too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from bson import ObjectId
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from core.config import Settings
from services.sending.provider import UNSUBSCRIBED, SendError

logger = logging.getLogger(__name__)

INVALID_NUMBER_CODES = frozenset({21211, 21214, 21265, 21614})
"""'To' is not a valid (or not a mobile) number: permanent."""
UNSUBSCRIBED_CODE = 21610
"""The recipient replied STOP to this sender: Twilio refuses until they reply START."""


@dataclass
class TwilioProvider:
    """Sends one message per `POST /2010-04-01/Accounts/{sid}/Messages.json`."""

    account_sid: str
    auth_token: str
    public_url: str
    messaging_service_sid: str | None = None
    from_number: str | None = None
    api_base: str = "https://api.twilio.com"
    timeout_s: float = 10.0
    name: str = "twilio"
    honours_idempotency: bool = False
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioProvider:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        assert settings.twilio_public_url
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            public_url=settings.twilio_public_url.rstrip("/"),
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from_number,
            api_base=settings.twilio_api_base.rstrip("/"),
            timeout_s=settings.twilio_timeout_seconds,
        )

    def status_callback(self, key: str, organization: ObjectId) -> str:
        """Where Twilio reports this message's delivery: the recipient id and its organization
        ride in the URL, which the signature covers, so a callback that arrives before the
        send's answer was recorded still finds its recipient, read by `{organizationId, _id}`
        (the shard key's field: one shard, not all of them)."""
        query = urlencode({"recipient": key, "org": str(organization)})
        return f"{self.public_url}/webhooks/twilio/status?{query}"

    async def send(
        self, to: str, body: str, key: str, *, organization: ObjectId, sender: str | None = None
    ) -> str:
        callback = self.status_callback(key, organization)
        form = {"To": to, "Body": body, "StatusCallback": callback}
        kind, _, value = (sender or "").partition(":")
        if kind == "service" and value:
            form["MessagingServiceSid"] = value
        elif kind == "phone" and value:
            form["From"] = value
        elif self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            assert self.from_number
            form["From"] = self.from_number
        url = f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            answer = await self._client().post(url, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: safe to try again.
            reason = str(exc) or type(exc).__name__
            raise SendError("TWILIO_UNREACHABLE", reason, transient=True) from exc
        except httpx.HTTPError as exc:
            raise SendError(
                "OUTCOME_UNKNOWN",
                f"Twilio did not answer ({type(exc).__name__}); not resent, as Twilio keeps no "
                "idempotency keys",
                transient=False,
                unknown=True,
            ) from exc
        return self._message_id(answer)

    @staticmethod
    def _message_id(answer: httpx.Response) -> str:
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if answer.status_code in (200, 201) and isinstance(body.get("sid"), str):
            return str(body["sid"])
        code = body.get("code")
        message = str(body.get("message") or answer.reason_phrase or "Twilio refused it")
        if answer.status_code == 429 or answer.status_code >= 500:
            raise SendError(f"TWILIO_{answer.status_code}", message, transient=True)
        if code == UNSUBSCRIBED_CODE:
            raise SendError(UNSUBSCRIBED, message, transient=False)
        if code in INVALID_NUMBER_CODES:
            raise SendError("INVALID_NUMBER", message, transient=False)
        return_code = f"TWILIO_{code}" if isinstance(code, int) else f"TWILIO_{answer.status_code}"
        raise SendError(return_code, message, transient=False)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                auth=(self.account_sid, self.auth_token),
                timeout=self.timeout_s,
                headers={"Accept": "application/json"},
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def signature_valid(
    settings: Settings, path: str, query: str, form: Mapping[str, str], signature: str | None
) -> bool:
    """Checks `X-Twilio-Signature` against the URL Twilio called: the configured public URL
    (what Twilio signed, whatever proxy stands in between) plus the path and query."""
    if not signature or not settings.twilio_auth_token or not settings.twilio_public_url:
        return False
    url = settings.twilio_public_url.rstrip("/") + path + (f"?{query}" if query else "")
    return bool(RequestValidator(settings.twilio_auth_token).validate(url, dict(form), signature))
