"""Temporary: a uvicorn server in its own thread (to be folded into tests/support.py)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.config import Settings
from tests.conftest import serving


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[str]:
    started: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with serving(settings) as url:
            started.put(url)
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            started.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    first = started.get(timeout=60)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        stop.set()
        thread.join(timeout=30)
