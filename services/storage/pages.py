"""Keyset pages: page sizes, opaque signed cursors, and the filter that resumes after one.

A cursor is the sort key and `_id` of the last item served, in base64url JSON with an HMAC, so
a cursor cannot be forged to name a position in another ordering and a damaged one is a clear
`BAD_USER_INPUT` rather than a server error. The HMAC key derives from the JWT secret, so
rotating the secret expires outstanding cursors (clients start again from the first page).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput

DEFAULT_PAGE = 20
MAX_PAGE = 100

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of items, each with the cursor that resumes after it."""

    items: list[T]
    cursors: Sequence[str]
    has_next: bool
    resume: str | None = None
    """Where to continue when the page ended before its last item (a read limit)."""

    @property
    def end_cursor(self) -> str | None:
        return self.resume or (self.cursors[-1] if self.cursors else None)


def page_size(first: int | None, path: tuple[str | int, ...] = ("first",)) -> int:
    """Returns the page size asked for, refusing sizes outside 1..MAX_PAGE."""
    if first is None:
        return DEFAULT_PAGE
    if not 1 <= first <= MAX_PAGE:
        message = f"Ask for 1 to {MAX_PAGE} items per page"
        raise InvalidInput(message, [FieldError(path, "INVALID_PAGE_SIZE", message)])
    return first


class LazyCursors(Sequence[str], Generic[T]):
    """The cursors of a page's items, each signed only when read.

    A page of 100 would sign 100 HMACs; clients mostly read `endCursor` alone.
    """

    def __init__(
        self, cursors: Cursors, items: Sequence[T], key: Callable[[T], tuple[object, Any]]
    ) -> None:
        self._cursors = cursors
        self._items = items
        self._key = key

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        value, document_id = self._key(self._items[index])
        return self._cursors.encode(value, document_id)


class Cursors:
    """Encodes and decodes the cursors of one ordering (`scope`: `campaigns:createdAt:desc`)."""

    def __init__(self, settings: Settings, scope: str) -> None:
        secret = hashlib.sha256(b"cursor:" + settings.jwt_secret.encode()).digest()
        self._key = secret
        self._scope = scope

    def encode(self, value: object, document_id: ObjectId) -> str:
        payload = json.dumps([self._scope, _plain(value), str(document_id)], separators=(",", ":"))
        body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=")
        return f"{body.decode()}.{self._sign(body)}"

    def decode(self, cursor: str, path: tuple[str | int, ...] = ("after",)) -> tuple[Any, ObjectId]:
        """Returns `(sort value, _id)`; refuses a cursor of another ordering or a damaged one."""
        try:
            body, _, signature = cursor.partition(".")
            if not hmac.compare_digest(signature, self._sign(body.encode())):
                raise ValueError("signature")
            padded = body + "=" * (-len(body) % 4)
            scope, value, document_id = json.loads(base64.urlsafe_b64decode(padded))
            if scope != self._scope or not ObjectId.is_valid(document_id):
                raise ValueError("scope")
            return _typed(value), ObjectId(document_id)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            message = "This cursor is invalid, or belongs to another ordering"
            raise InvalidInput(message, [FieldError(path, "INVALID_CURSOR", message)]) from None

    def _sign(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def after_filter(
    field: str, value: Any, document_id: ObjectId, *, descending: bool
) -> dict[str, Any]:
    """Returns the filter for items after `(value, _id)` in `(field, _id)` order.

    MongoDB sorts `null` before every date, so ascending order puts documents without the
    field first and descending order puts them last.
    """
    if field == "_id":
        return {"_id": {"$lt" if descending else "$gt": document_id}}
    beyond = "$lt" if descending else "$gt"
    same = {field: value, "_id": {beyond: document_id}}
    if value is None:
        if descending:
            return same
        return {"$or": [same, {field: {"$ne": None}}]}
    clauses: list[dict[str, Any]] = [{field: {beyond: value}}, same]
    if descending:
        clauses.append({field: None})
    return {"$or": clauses}


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return {"$date": value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()}
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    return value


def _typed(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$date"}:
        parsed = datetime.fromisoformat(value["$date"])
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, dict) and set(value) == {"$oid"}:
        return ObjectId(value["$oid"])
    if value is None or isinstance(value, (int, str, bool)):
        return value
    raise ValueError("cursor value")
