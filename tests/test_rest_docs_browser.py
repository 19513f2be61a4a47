"""The REST docs at /docs render offline: Swagger UI from local assets, in a real browser."""

from __future__ import annotations

import re

import httpx

from core.config import Settings
from resolvers.assets import IDE_ASSET_PREFIX
from tests.support import Browser, serving_in_thread


def test_docs_page_renders_the_campaign_route_without_a_cdn(
    settings: Settings, browser: Browser
) -> None:
    with serving_in_thread(settings) as base:
        page = httpx.get(f"{base}/docs", timeout=10).text
        assert not re.search(r"https?://", page), "the docs page must not name a remote URL"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert len([a for a in assets if a.startswith(IDE_ASSET_PREFIX)]) == 2, assets
        for url in assets:
            if url.startswith(IDE_ASSET_PREFIX):
                assert httpx.get(f"{base}{url}", timeout=10).status_code == 200, url

        with browser.page(f"{base}/docs") as docs:
            docs.wait_for(
                "!!document.body?.innerText.includes('Create a new campaign')",
                "Swagger UI to render the campaign route",
            )
            dom = docs.evaluate("document.documentElement.outerHTML")
    assert "swagger-ui" in dom
    assert "/api/campaigns" in dom, dom[:2000]
