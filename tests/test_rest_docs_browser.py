"""The REST docs at /docs render offline: Swagger UI from local assets, in a real browser."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from core.config import Settings
from resolvers.assets import IDE_ASSET_PREFIX
from tests.support import BROWSER_TIMEOUT_S, chromium_args, serving


async def test_docs_page_renders_the_campaign_route_without_a_cdn(
    settings: Settings, tmp_path: Path
) -> None:
    async with serving(settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            page = (await http.get("/docs")).text
            assert not re.search(r"https?://", page), "the docs page must not name a remote URL"
            assets = re.findall(r'(?:src|href)="([^"]+)"', page)
            assert len([a for a in assets if a.startswith(IDE_ASSET_PREFIX)]) == 2, assets
            for url in assets:
                if url.startswith(IDE_ASSET_PREFIX):
                    assert (await http.get(url)).status_code == 200, url

        browser = await asyncio.create_subprocess_exec(
            *chromium_args(str(tmp_path / "profile")),
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{base}/docs",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(browser.communicate(), BROWSER_TIMEOUT_S)
    dom = out.decode()
    assert browser.returncode == 0, err.decode()[-2000:]
    assert "swagger-ui" in dom
    assert "/api/campaigns" in dom, dom[:2000]
    assert "Create a new campaign" in dom
