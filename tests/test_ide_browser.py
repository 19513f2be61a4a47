"""The self-hosted GraphiQL renders in a real browser, using only files this server serves.

Why a browser: the failure this guards against (the IDE loading scripts from a CDN that
is unreachable) gives a 200 page that renders blank, which no HTTP-level test notices.
A real uvicorn server on a loopback port serves the real app (`main.create_app`, lifespan
and database included), and Debian's headless Chromium loads it and runs a query of the
real schema with a token typed into the headers editor. A missing Chromium is a failure
(never a skip), with the install command in the message.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from core.auth import DEV_ORGANIZATION_ID, DEV_USER_ID
from resolvers import assets, ide
from resolvers.assets import IDE_ASSET_PREFIX
from resolvers.ide import render_graphiql
from tests.support import (
    Browser,
    DevTools,
    client_with,
    make_settings,
    serving_in_thread,
    token,
)

PARSE_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def base_url(mongo_uri: str) -> Iterator[str]:
    """Serves the real app with uvicorn on a loopback port, from a thread of its own (the
    browser tests are synchronous and block this thread while Chromium talks to the server)."""
    missing = assets.missing_ide_assets()
    assert not missing, f"GraphiQL assets not installed ({missing}); run: {assets.INSTALL_HINT}"
    # Development: a browser on this machine gets the IDE with a fresh token prefilled.
    with serving_in_thread(make_settings(mongo_uri, environment="development")) as url:
        yield url


def fetch_page(base_url: str) -> str:
    """GET /graphql the way a browser does (Accept: text/html selects the IDE)."""
    response = httpx.get(f"{base_url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_page_references_only_local_assets_that_are_served(base_url: str) -> None:
    page = fetch_page(base_url)
    assert "graphiql" in page.lower()
    assert not re.search(r"https?://", page), "the IDE page must not name any remote URL"
    assert "unpkg" not in page and "jsdelivr" not in page

    urls = re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', page)
    local = [u for u in urls if not u.startswith("data:")]
    expected_types = {".js": "javascript", ".css": "text/css"}
    assert {Path(u.split("?")[0]).suffix for u in local} == set(expected_types), local
    assert len(local) == 4, local  # react, react-dom, graphiql js, graphiql css
    for url in local:
        assert url.startswith(f"{IDE_ASSET_PREFIX}/"), url
        response = httpx.get(f"{base_url}{url}", timeout=10)
        assert response.status_code == 200, url
        assert len(response.content) > 1000, url
        suffix = Path(url.split("?")[0]).suffix
        assert expected_types[suffix] in response.headers["content-type"], (url, response.headers)


def test_only_whitelisted_files_are_served(base_url: str) -> None:
    for path in ("package.json", "../package.json", "react/package.json", "graphiql.js"):
        response = httpx.get(f"{base_url}{IDE_ASSET_PREFIX}/{path}", timeout=10)
        assert response.status_code == 404, path


def test_chromium_renders_graphiql(base_url: str, browser: Browser) -> None:
    """Once the scripts ran, GraphiQL's own markup must be there."""
    with browser.page(f"{base_url}/graphql") as page:
        page.wait_for("!!document.querySelector('.graphiql-execute-button')", "GraphiQL")
        dom = page.evaluate("document.documentElement.outerHTML")
    # The served page has no such class: only GraphiQL rendering by React adds these.
    assert "graphiql-container" in dom, dom[:3000]
    assert "graphiql-query-editor" in dom, dom[:3000]
    assert "graphiql-execute-button" in dom, dom[:3000]
    assert "Loading GraphiQL" not in dom


@pytest.fixture
def devtools(base_url: str, browser: Browser) -> Iterator[DevTools]:
    """Headless Chromium on /graphql, driven over the DevTools protocol."""
    with browser.page(f"{base_url}/graphql") as page:
        yield page


# CodeMirror 5 keeps its instance on the wrapper element as `.CodeMirror`.
JS_EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
JS_HEADERS = (
    "[...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]"
    ".map(e => e.CodeMirror).find(cm => cm.getValue().includes('Authorization'))"
)
JS_RESPONSE = (
    "(() => { const e = document.querySelector('.graphiql-response .CodeMirror');"
    " return e ? e.CodeMirror.getValue() : ''; })()"
)


def run_query(page: DevTools, query: str) -> dict[str, Any]:
    """Types `query`, clears the result pane, clicks Run and returns the shown JSON."""
    page.evaluate(f"{JS_EDITOR}.setValue({json.dumps(query)})")
    # GraphiQL re-parses the query (and so the operation name it sends) debounced after an
    # edit; Run before that would send the previous operation name. Wait until the parsed
    # document on the editor is the text just typed.
    page.wait_for(
        f"{JS_EDITOR}.documentAST?.loc?.source.body === {json.dumps(query)}",
        "GraphiQL to parse the new query",
        timeout_s=PARSE_TIMEOUT_S,
        interval_s=0.1,
    )
    page.evaluate(
        "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.setValue('')"
    )
    page.evaluate("document.querySelector('.graphiql-execute-button').click()")
    text = page.wait_for(JS_RESPONSE, "a response")
    data: dict[str, Any] = json.loads(text)
    return data


def test_graphiql_runs_a_query_with_the_prefilled_token(devtools: DevTools) -> None:
    """A newcomer's first minute: open /graphql, press Run, see who they are. The token came
    with the page; then the headers editor is shown to send exactly what it holds."""
    devtools.wait_for("!!document.querySelector('.graphiql-execute-button')", "GraphiQL")
    headers = json.loads(devtools.wait_for(f"{JS_HEADERS}?.getValue()", "the headers editor"))
    prefilled = headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(prefilled, options={"verify_signature": False})["sub"] == DEV_USER_ID
    tabs = devtools.evaluate(
        "[...document.querySelectorAll('.graphiql-tab')].map(t => t.textContent)"
    )
    assert [t for t in ("Me", "Campaigns", "CreateCampaign") if any(t in x for x in tabs)] == [
        "Me",
        "Campaigns",
        "CreateCampaign",
    ], tabs

    # Run the first tab as it is: the page's token is accepted by the real auth.
    query = devtools.evaluate(f"{JS_EDITOR}.getValue()")
    assert "query Me" in query
    result = run_query(devtools, query)
    assert result["data"]["me"]["userId"] == DEV_USER_ID, result
    assert result["data"]["me"]["organizationId"] == DEV_ORGANIZATION_ID, result
    save_screenshot(devtools, "graphiql-prefilled-token.png")

    # The placeholder hint is not sent as a token: the server sees no header at all (a sent
    # placeholder would be refused as "Token is malformed or invalid").
    devtools.evaluate(f"{JS_HEADERS}.setValue({json.dumps(ide.DEFAULT_HEADERS)})")
    result = run_query(devtools, "query NoToken { me { userId organizationId } }")
    assert result["data"] is None, result
    assert [e["message"] for e in result["errors"]] == ["Authentication required"], result
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", result

    # Another organization's token typed into the headers editor is sent as typed.
    tok = token()
    claims = jwt.decode(tok, options={"verify_signature": False})
    typed = json.dumps({"Authorization": f"Bearer {tok}"})
    devtools.evaluate(f"{JS_HEADERS}.setValue({json.dumps(typed)})")
    result = run_query(devtools, "{ me { userId organizationId } }")
    assert result == {
        "data": {"me": {"userId": claims["sub"], "organizationId": claims["org_id"]}}
    }, result


def test_a_saved_expired_token_is_replaced_on_the_next_visit(devtools: DevTools) -> None:
    """GraphiQL restores saved tabs instead of the page's; an expired token in them would
    greet the developer with "Token expired" every morning."""
    devtools.wait_for("!!document.querySelector('.graphiql-execute-button')", "GraphiQL")
    expired = token(exp=int(time.time()) - 3600)
    pasted = token()  # still valid: a token the developer chose is kept
    state = {
        "activeTabIndex": 0,
        "tabs": [
            {
                "id": "a",
                "hash": None,
                "title": "Old",
                "query": "query Old { me { userId } }",
                "variables": None,
                "headers": json.dumps({"Authorization": f"Bearer {expired}"}),
                "operationName": "Old",
                "response": None,
            },
            {
                "id": "b",
                "hash": None,
                "title": "Mine",
                "query": "query Mine { me { userId } }",
                "variables": None,
                "headers": json.dumps({"Authorization": f"Bearer {pasted}"}),
                "operationName": "Mine",
                "response": None,
            },
        ],
    }
    # Planted before any script of the next page load runs: the open page would otherwise
    # write its own tabs over them (GraphiQL saves on a debounce).
    plant = (
        f"localStorage.setItem('graphiql:tabState', {json.dumps(json.dumps(state))});"
        f"localStorage.setItem('graphiql:headers', "
        f"{json.dumps(json.dumps({'Authorization': f'Bearer {expired}'}))});"
    )
    devtools.call("Page.enable")
    devtools.call("Page.addScriptToEvaluateOnNewDocument", source=plant)
    devtools.call("Page.reload", ignoreCache=True)
    devtools.wait_for(
        "document.readyState === 'complete' && !!document.querySelector('.graphiql-tab')",
        "GraphiQL after the reload",
    )
    saved = json.loads(devtools.evaluate("localStorage.getItem('graphiql:tabState')"))
    by_title = {t["title"]: json.loads(t["headers"])["Authorization"] for t in saved["tabs"]}
    assert by_title["Mine"] == f"Bearer {pasted}"
    fresh = by_title["Old"].removeprefix("Bearer ")
    assert fresh != expired
    assert jwt.decode(fresh, options={"verify_signature": False})["sub"] == DEV_USER_ID
    result = run_query(devtools, "query Old { me { userId } }")
    assert result == {"data": {"me": {"userId": DEV_USER_ID}}}, result


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def save_screenshot(page: DevTools, name: str) -> Path:
    """Saves what the browser shows under `test-artifacts/` (CI keeps the folder)."""
    shot = page.call("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000, "the screenshot is suspiciously small"
    return path


async def test_missing_assets_show_install_instructions(
    mongo_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without `ide/node_modules` the API still starts and /graphql says how to fix it."""
    monkeypatch.setattr(assets, "IDE_NODE_MODULES", tmp_path / "node_modules")
    page = render_graphiql("/graphql")
    assert "npm ci --prefix ide" in page
    assert "<script" not in page
    assert not re.search(r"https?://", page)

    # The real app, built and started (lifespan included) with the assets missing.
    async with client_with(mongo_uri) as client:
        served = await client.get("/graphql", headers={"Accept": "text/html"})
        assert served.status_code == 200
        assert "npm ci --prefix ide" in served.text
        assert "<script" not in served.text
        asset = await client.get(f"{IDE_ASSET_PREFIX}/graphiql.min.js")
        assert asset.status_code == 404
        assert "npm ci --prefix ide" in asset.text
