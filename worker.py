"""A sending worker: `python -m worker` (or `make worker`).

Runs the same dispatcher an API process runs in the embedded default, without serving HTTP. Any
number of workers and API processes on one database split the work through leases in the
database; nothing else coordinates them. SIGTERM or Ctrl-C stops it after the chunk in flight.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from prometheus_client import start_http_server

from core.config import get_settings
from core.db import create_client, init_database
from core.requests import configure_logging
from services.conversations import outbound
from services.conversations.simulated import provider_from
from services.sending.dispatcher import Dispatcher, config_from
from services.storage import migrations

logger = logging.getLogger("worker")


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    client = create_client(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await init_database(client, settings.mongodb_db)
        await migrations.migrate()
        if settings.worker_metrics_port:
            start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
        dispatcher = Dispatcher(provider_from(settings), config_from(settings))
        logger.info(
            "worker %s sending through %s", dispatcher.config.owner, dispatcher.provider.name
        )
        await asyncio.gather(
            dispatcher.run(stop),
            outbound.run_due(dispatcher.provider, stop, dispatcher.rep_meter()),
        )
    finally:
        await client.close()


if __name__ == "__main__":
    uvloop.run(main())  # the loop uvicorn runs the API on
