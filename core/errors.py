"""Domain errors raised by services and mapped once per API surface.

    ServiceError
     ├── AuthenticationError   401 / UNAUTHENTICATED
     ├── PermissionDenied      403 / FORBIDDEN
     ├── NotFound              404 / NOT_FOUND
     ├── InvalidInput          400 / BAD_USER_INPUT   (carries FieldErrors)
     │    └── PayloadTooLarge  413 / PAYLOAD_TOO_LARGE
     ├── Conflict              409 / CONFLICT
     └── Unavailable           503 / SERVICE_UNAVAILABLE

Services raise these; REST maps them to the legacy envelope and GraphQL to `userErrors`
or `extensions.code`. Anything else is a bug and is answered as an opaque 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one part of the input; `path` points into the request body."""

    path: Path
    code: str
    message: str

    @property
    def dotted(self) -> str:
        """Returns the path as the legacy callers spell it: `newContacts.3.phoneNumber`."""
        return ".".join(str(p) for p in self.path) if self.path else "body"


class ServiceError(Exception):
    """Base of every expected failure; `code` is the stable machine-readable name."""

    code = "INTERNAL_SERVER_ERROR"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(ServiceError):
    """The caller could not be identified from a verified token."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(ServiceError):
    """The caller is known but may not do this."""

    code = "FORBIDDEN"
    http_status = 403


class NotFound(ServiceError):
    """Nothing with that id exists in the caller's organization."""

    code = "NOT_FOUND"
    http_status = 404


class InvalidInput(ServiceError):
    """The request is wrong as a whole; nothing was written."""

    code = "BAD_USER_INPUT"
    http_status = 400

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors)


class PayloadTooLarge(InvalidInput):
    """The body or the number of recipients is over a configured limit."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class Conflict(ServiceError):
    """The request contradicts the stored state (a reused idempotency key, a lost race)."""

    code = "CONFLICT"
    http_status = 409


class Unavailable(ServiceError):
    """A dependency (the database) is not answering; retrying later may succeed."""

    code = "SERVICE_UNAVAILABLE"
    http_status = 503
