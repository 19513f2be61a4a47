"""FastAPI dependencies shared by the REST routes and the GraphQL context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.auth import Principal, authenticate
from core.config import Settings, get_settings
from core.db import MongoClient
from core.errors import AuthenticationError
from services.tenancy import Tenant

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_client(request: Request) -> MongoClient:
    """Returns the process's database client, created in the app's lifespan."""
    client: MongoClient = request.app.state.mongo_client
    return client


def authorization_header(request: Request) -> str | None:
    """Returns the one `Authorization` header; two are ambiguous (which one is the caller?),
    so they are refused rather than the first being picked."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise AuthenticationError("Send exactly one Authorization header")
    return values[0] if values else None


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """Verifies the bearer token; raises `AuthenticationError` (401) when it cannot."""
    return authenticate(authorization_header(request), settings)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_tenant(principal: CurrentPrincipal) -> Tenant:
    """Returns the caller's organization scope, through which every query goes."""
    return Tenant(principal)


CurrentTenant = Annotated[Tenant, Depends(get_tenant)]
