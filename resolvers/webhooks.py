"""Provider webhooks: Twilio's delivery reports and inbound replies.

Thin like every route: verify, parse, call `services.sending.delivery` (reports) or
`services.conversations.inbound` (messages received), answer. A request whose
`X-Twilio-Signature` does not match (or is missing, or no auth token is configured) is refused
with 403 before anything is read from it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from resolvers.deps import SettingsDep
from services.conversations import inbound, outbound, pending
from services.sending import delivery, metrics
from services.sending.twilio import signature_valid

router = APIRouter(prefix="/webhooks/twilio", include_in_schema=False)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
"""No automatic answer but HELP's: Twilio's own opt-out handling replies to STOP and START."""


def twiml(answer: str | None) -> str:
    """The webhook's answer: nothing, or one message back (the organization's help text)."""
    if answer is None:
        return EMPTY_TWIML
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(answer)}</Message></Response>"
    )


class BadSignature(Exception):
    pass


async def _verified_form(request: Request, settings: SettingsDep, kind: str) -> dict[str, str]:
    body = await request.body()
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    signature = request.headers.get("x-twilio-signature")
    query = request.url.query
    if not signature_valid(settings, request.url.path, query, form, signature):
        metrics.WEBHOOKS.labels(kind, "bad_signature").inc()
        raise BadSignature
    return form


def _refused() -> Response:
    return PlainTextResponse("Invalid or missing X-Twilio-Signature", status_code=403)


@router.post("/status")
async def twilio_status(request: Request, settings: SettingsDep) -> Response:
    """A message's delivery state changed (Twilio's `StatusCallback`)."""
    try:
        form = await _verified_form(request, settings, "status")
    except BadSignature:
        return _refused()
    about = request.query_params.get("recipient", "")
    organization = request.query_params.get("org")  # None: a callback URL from before it rode there
    status, sid, error = (
        form.get("MessageStatus", ""),
        form.get("MessageSid"),
        form.get("ErrorCode"),
    )
    outcome = await delivery.record_status(about, status, sid, error, organization)
    if outcome is delivery.Outcome.UNKNOWN_RECIPIENT and await outbound.record_status(
        about, status, sid, error, organization
    ):
        outcome = delivery.Outcome.APPLIED  # a rep's message (its id rides in the same place)
    metrics.WEBHOOKS.labels("status", outcome.value).inc()
    return Response(status_code=204)


@router.post("/inbound")
async def twilio_inbound(request: Request, settings: SettingsDep) -> Response:
    """A contact texted one of the organizations' senders: kept in its thread, read for
    keywords, attributed to the campaign it answers. An ordinary reply is accepted and applied
    right after the answer (`services.conversations.pending`); a keyword before it. A sender
    nobody owns still gets a 2xx (Twilio would retry otherwise); it is counted as `unrouted`
    and nothing is stored."""
    try:
        form = await _verified_form(request, settings, "inbound")
    except BadSignature:
        return _refused()
    message = inbound.Inbound.from_form(form)
    if pending.deferrable(message):
        replies: pending.PendingReplies = request.app.state.pending_replies
        if not await replies.accept(form, message):
            metrics.WEBHOOKS.labels("inbound", inbound.Outcome.DUPLICATE.value).inc()
        return Response(EMPTY_TWIML, media_type="text/xml")
    received = await inbound.receive(message, settings)
    metrics.WEBHOOKS.labels("inbound", received.outcome.value).inc()
    return Response(twiml(received.answer), media_type="text/xml")
