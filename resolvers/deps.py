"""FastAPI dependencies shared by the REST routes and the GraphQL context.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop per dependency per request for a few microseconds of work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from core.auth import Principal, authenticate
from core.config import Settings
from core.db import MongoClient
from core.errors import AuthenticationError
from services.storage.tenancy import Tenant


async def app_settings(request: Request) -> Settings:
    """Returns the settings the app was built with (`main.create_app` keeps them on the app).

    Not `dependency_overrides`: with any override present, FastAPI rebuilds every dependency's
    signature on every request, a cost paid by every route.
    """
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
PRINCIPAL_STATE = "principal"
"""Where in the request's state a caller verified before routing is kept."""


def get_client(request: Request) -> MongoClient:
    """Returns the process's database client, created in the app's lifespan."""
    client: MongoClient = request.app.state.mongo_client
    return client


def authorization_header(request: HTTPConnection) -> str | None:
    """Returns the one `Authorization` header; two are ambiguous (which one is the caller?),
    so they are refused rather than the first being picked."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise AuthenticationError("Send exactly one Authorization header")
    return values[0] if values else None


def verified_principal(connection: HTTPConnection, settings: Settings) -> Principal:
    """Returns the caller: as the request limiter already verified it (`resolvers.limits`, which
    keeps it in the request's state), else by verifying the bearer token now; raises
    `AuthenticationError` (401) when it cannot."""
    state = connection.scope.get("state")
    if state is not None and isinstance(found := state.get(PRINCIPAL_STATE), Principal):
        return found
    return authenticate(authorization_header(connection), settings)


async def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """Verifies the bearer token; raises `AuthenticationError` (401) when it cannot."""
    return verified_principal(request, settings)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: CurrentPrincipal) -> Tenant:
    """Returns the caller's organization scope, through which every query goes."""
    return Tenant(principal)


CurrentTenant = Annotated[Tenant, Depends(get_tenant)]
