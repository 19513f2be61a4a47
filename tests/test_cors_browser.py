"""An Apollo app on its own origin, in headless Chromium: it can query, mutate and subscribe when
its origin is allowed, and gets nothing (and runs nothing) when it is not.

The page is served by a second local server (another origin than the API's), loads the
`@apollo/client` bundle built from `e2e/apollo/browser.mjs`, and calls the API across origins,
so the browser itself applies CORS: preflights, exposed headers and the websocket's `Origin`.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.support import ROOT, Browser, auth, make_settings, serving_in_thread, token

BUNDLE = ROOT / "e2e" / "apollo" / "dist" / "apollo-browser.js"
PAGE = """<!doctype html><meta charset="utf-8"><title>cors</title>
<script src="/apollo-browser.js"></script><p id="ready">ready</p>"""


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Serves the page and the bundle from a folder of their own; yields the port."""
    assert BUNDLE.is_file(), "run scripts/ensure-tools.sh --test (it builds the Apollo bundle)"
    folder = tmp_path_factory.mktemp("app-origin")
    (folder / "index.html").write_text(PAGE)
    (folder / "apollo-browser.js").write_bytes(BUNDLE.read_bytes())
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def api(mongo_uri: str, page_server: int) -> Iterator[str]:
    """The API, allowing the page's origin as `127.0.0.1` only (`localhost` is another one)."""
    allowed = f"http://127.0.0.1:{page_server}"
    with serving_in_thread(make_settings(mongo_uri, cors_allowed_origins=[allowed])) as url:
        yield url


def run_apollo(browser: Browser, page_url: str, api: str, tok: str, name: str) -> dict[str, Any]:
    with browser.page(page_url) as page:
        page.wait_for("typeof window.runApollo === 'function'", "the Apollo bundle")
        outcome: dict[str, Any] = page.evaluate(f"window.runApollo({api!r}, {tok!r}, {name!r})")
    return outcome


def campaign_names(api: str, tok: str) -> list[str]:
    listed = httpx.get(f"{api}/api/campaigns", headers=auth(tok), timeout=10)
    assert listed.status_code == 200
    return [c["name"] for c in listed.json()["data"]]


def test_an_allowed_origin_queries_mutates_and_subscribes(
    api: str, page_server: int, browser: Browser
) -> None:
    org = ObjectId()
    tok = token(org=org)
    page = f"http://127.0.0.1:{page_server}/index.html"
    outcome = run_apollo(browser, page, api, tok, "from the app origin")
    assert outcome["me"]["organizationId"] == str(org), outcome
    created = outcome["create"]
    assert created["userErrors"] == [] and created["campaign"]["status"] == "DRAFT", outcome
    assert outcome["progress"]["status"] == "DRAFT", outcome
    assert campaign_names(api, tok) == ["from the app origin"]


def test_an_origin_not_on_the_list_gets_nothing_and_runs_nothing(
    api: str, page_server: int, browser: Browser
) -> None:
    tok = token(org=ObjectId())
    page = f"http://localhost:{page_server}/index.html"  # same server, another origin
    outcome = run_apollo(browser, page, api, tok, "from elsewhere")
    for step in ("me", "create", "progress"):
        assert "error" in outcome[step], outcome
    assert "Failed to fetch" in outcome["create"]["error"], outcome
    assert campaign_names(api, tok) == []
