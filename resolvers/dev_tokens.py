"""Who gets a development token with the GraphiQL page: a developer's browser on this machine."""

from __future__ import annotations

import ipaddress
from typing import Final

from starlette.requests import Request

from core.auth import mint_dev_token
from core.config import Settings

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
FORWARDING_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def dev_token_for(request: Request, settings: Settings) -> str | None:
    """A fresh development token for the IDE page, or None.

    Only in development and only for a browser on this machine: the connection comes from a
    loopback address, no proxy forwarded it (a reverse proxy on the same host connects from
    loopback on behalf of anyone), and the Host header names loopback too (otherwise a DNS
    rebinding page could read the token from a name that resolves to 127.0.0.1).
    """
    if settings.environment != "development" or request.client is None:
        return None
    try:
        if not ipaddress.ip_address(request.client.host).is_loopback:
            return None
    except ValueError:
        return None
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return None
    host = request.headers.get("host", "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name not in LOOPBACK_HOSTS:
        return None
    return mint_dev_token(settings)
