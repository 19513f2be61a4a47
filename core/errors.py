"""Domain errors raised by services and mapped once per API surface.

    ServiceError
     ├── AuthenticationError    UNAUTHENTICATED
     ├── PermissionDenied       FORBIDDEN
     ├── NotFound               NOT_FOUND
     ├── InvalidInput           BAD_USER_INPUT   (carries FieldErrors)
     │    └── PayloadTooLarge   PAYLOAD_TOO_LARGE
     ├── Conflict               CONFLICT
     │    └── InvalidTransition INVALID_TRANSITION
     └── Unavailable            SERVICE_UNAVAILABLE

Services raise these and know nothing of HTTP: `resolvers/rest/envelope.py` maps them to
statuses and the legacy envelope, `resolvers/payloads.py` to `userErrors`, and
`resolvers/errors.py` to `extensions.code`. Anything else is a bug, answered opaquely.
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
    """Base of every expected failure; `code` is the stable machine-readable name.

    `errors` names the parts of the input the failure is about, when there are such parts.
    """

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[FieldError] = list(errors)


class AuthenticationError(ServiceError):
    """The caller could not be identified from a verified token."""

    code = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    """The caller is known but may not do this."""

    code = "FORBIDDEN"


class NotFound(ServiceError):
    """Nothing with that id exists in the caller's organization (or it is another's)."""

    code = "NOT_FOUND"

    def __init__(self, what: str, path: Path = ("id",)) -> None:
        message = f"No {what} with that id in your organization"
        super().__init__(message, [FieldError(path, self.code, message)])


class InvalidInput(ServiceError):
    """The request is wrong as a whole; nothing was written."""

    code = "BAD_USER_INPUT"


class PayloadTooLarge(InvalidInput):
    """The body or the number of recipients is over a configured limit."""

    code = "PAYLOAD_TOO_LARGE"


class Conflict(ServiceError):
    """The request contradicts the stored state (a reused idempotency key, a lost race)."""

    code = "CONFLICT"


class InvalidTransition(Conflict):
    """The campaign's status does not allow this action (or changed while it was asked)."""

    code = "INVALID_TRANSITION"

    def __init__(self, action: str, current: str, path: Path = ("id",)) -> None:
        message = f"Cannot {action} a campaign whose status is '{current}'"
        super().__init__(message, [FieldError(path, self.code, message)])
        self.current = current


class Unavailable(ServiceError):
    """A dependency (the database) is not answering; retrying later may succeed."""

    code = "SERVICE_UNAVAILABLE"
