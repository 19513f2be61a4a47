"""Campaign messages that changed contacts' threads, told to whoever keeps something derived
from threads: the conversations domain keeps a summary per conversation (its last message),
and it sits above sending, which may not import it, so it registers here when imported (as
`main` and `worker` import it).

A listener is awaited after the change is written, not before: whatever it then reads
includes the change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bson import ObjectId

from services.storage.tenancy import Tenant

ThreadsChanged = Callable[[Tenant, Sequence[ObjectId]], Awaitable[None]]
_listeners: list[ThreadsChanged] = []


def on_threads_changed(listener: ThreadsChanged) -> ThreadsChanged:
    """Registers `listener` (once) for every written campaign send and delivery report."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


async def threads_changed(tenant: Tenant, contact_ids: Sequence[ObjectId]) -> None:
    """Tells the listeners that these contacts' threads changed (a send or its report)."""
    unique = list(dict.fromkeys(contact_ids))
    if unique:
        for listener in _listeners:
            await listener(tenant, unique)
