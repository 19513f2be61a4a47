"""Self-hosted GraphiQL for `GET /graphql`.

Why: Strawberry's stock GraphiQL page loads React and GraphiQL from a public CDN. Our
machines (and customers' air-gapped ones) reach only package registries, so that page
renders blank. Instead the npm packages pinned in `ide/package.json` (installed with
`npm ci --prefix ide`, or `make ide`) are served by the API itself under
`IDE_ASSET_PREFIX`, and `render_graphiql` builds a page that references only those
local files: no `http(s)://` URL appears in it.

Missing assets: a missing IDE must not take the API down, so `mount_ide_assets` only logs
a warning when `ide/node_modules` is not installed, and `render_graphiql` then returns a
small page that explains how to install it. Both look at the disk on every call, so
running `npm ci --prefix ide` while the server runs makes the IDE appear on the next
page load, without a restart.

Only a fixed list of files is served (`IDE_ASSETS`), each through an explicit route: the
rest of `node_modules` is never exposed, and no path from the request reaches the
filesystem.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from core.auth import mint_dev_token
from core.config import Settings

logger = logging.getLogger(__name__)

IDE_ASSET_PREFIX: Final = "/ide/assets"
"""URL prefix under which the GraphiQL browser files are served."""

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
IDE_NODE_MODULES: Path = REPO_ROOT / "ide" / "node_modules"
"""Where `npm ci --prefix ide` installs the packages; a module variable so tests can move it."""

INSTALL_HINT: Final = "npm ci --prefix ide  (or: make ide)"

TOKEN_PLACEHOLDER: Final = "<token from make token>"
DEFAULT_HEADERS: Final = json.dumps({"Authorization": f"Bearer {TOKEN_PLACEHOLDER}"}, indent=2)
DEFAULT_QUERY: Final = """\
# Press Ctrl-Enter or the run button.
# The token goes in the Headers tab below
# (in development, on this machine, a fresh
# one is already there). More examples are
# in the other tabs.

query Me {
  me {
    userId
    organizationId
    fullName
    roles
  }
}
"""

EXAMPLE_CAMPAIGNS: Final = """\
# Newest first, 10 at a time: pass pageInfo.endCursor as $after
# for the next page.
query Campaigns($after: String) {
  campaigns(first: 10, after: $after, orderBy: {field: CREATED_AT, direction: DESC}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id
        name
        status
        scheduleDate
        createdBy { fullName }
        stats { total sent failed successRate }
      }
    }
  }
}
"""

EXAMPLE_CREATE: Final = """\
# Creates a campaign for two new contacts; see the Variables tab.
# Problems with single contacts come back in failedDetails.
mutation CreateCampaign($input: CreateCampaignInput!) {
  createCampaign(input: $input) {
    campaign {
      id name status scheduleDate
      stats { total }
      failedDetails { source index field value code message }
    }
    userErrors { field code message }
  }
}
"""

EXAMPLE_CREATE_VARIABLES: Final = json.dumps(
    {
        "input": {
            "name": "Spring follow-up",
            "message": "Hi {{firstName|there}}, are you free for a quick call this week?",
            "newContacts": [
                {"firstName": "Ada", "lastName": "Lovelace", "phoneNumber": "+1 415 555 2671"},
                {"firstName": "Alan", "lastName": "Turing", "phoneNumber": "+1 415 555 2672"},
            ],
        }
    },
    indent=2,
)

_JS: Final = "text/javascript; charset=utf-8"
_CSS: Final = "text/css; charset=utf-8"
_MAP: Final = "application/json"


@dataclass(frozen=True)
class IdeAsset:
    """One browser file from an npm package, and the content type it is served with."""

    package: str
    path: str
    media_type: str
    required: bool = True

    def file(self) -> Path:
        """Absolute path of the file inside `IDE_NODE_MODULES` (read at call time)."""
        return IDE_NODE_MODULES / self.package / self.path


IDE_ASSETS: Final[dict[str, IdeAsset]] = {
    "react.production.min.js": IdeAsset("react", "umd/react.production.min.js", _JS),
    "react-dom.production.min.js": IdeAsset("react-dom", "umd/react-dom.production.min.js", _JS),
    "graphiql.min.js": IdeAsset("graphiql", "graphiql.min.js", _JS),
    "graphiql.min.css": IdeAsset("graphiql", "graphiql.min.css", _CSS),
    # Named by `sourceMappingURL` comments in the two files above; only devtools fetch them.
    "graphiql.min.js.map": IdeAsset("graphiql", "graphiql.min.js.map", _MAP, required=False),
    "graphiql.min.css.map": IdeAsset("graphiql", "graphiql.min.css.map", _MAP, required=False),
    # The REST docs at /docs (FastAPI's Swagger UI page, pointed here instead of a CDN).
    "swagger-ui-bundle.js": IdeAsset("swagger-ui-dist", "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": IdeAsset("swagger-ui-dist", "swagger-ui.css", _CSS),
}
"""URL name under `IDE_ASSET_PREFIX` -> file in `ide/node_modules`."""


def asset_url(name: str) -> str:
    """The URL of one of `IDE_ASSETS`, with its package version so upgrades bust caches."""
    asset = IDE_ASSETS[name]
    return f"{IDE_ASSET_PREFIX}/{name}?v={_package_version(asset.package)}"


def missing_ide_assets() -> list[Path]:
    """The required asset files that are not on disk (empty when the IDE is installed)."""
    return [a.file() for a in IDE_ASSETS.values() if a.required and not a.file().is_file()]


def mount_ide_assets(app: FastAPI) -> None:
    """Adds `GET {IDE_ASSET_PREFIX}/{name}` for each of `IDE_ASSETS`.

    Never raises for a missing install: it logs a warning, the routes answer 404 with the
    fix, and `render_graphiql` serves the install instructions instead of a blank page.
    """
    if missing := missing_ide_assets():
        logger.warning(
            "GraphiQL assets are not installed (missing %s); GET /graphql will show install "
            "instructions. Fix: %s",
            ", ".join(str(p) for p in missing),
            INSTALL_HINT,
        )

    for name, asset in IDE_ASSETS.items():
        app.add_api_route(
            f"{IDE_ASSET_PREFIX}/{name}",
            _asset_endpoint(asset),
            methods=["GET", "HEAD"],
            name=f"ide-asset:{name}",
            include_in_schema=False,
        )


def _asset_endpoint(asset: IdeAsset) -> Callable[[], Awaitable[Response]]:
    """A route handler bound to one whitelisted file: nothing from the URL reaches the disk."""

    async def ide_asset() -> Response:
        path = asset.file()
        if not path.is_file():
            return PlainTextResponse(f"GraphiQL asset not installed. Run: {INSTALL_HINT}\n", 404)
        # Long-lived caching is safe: pages link each file with `?v=<package version>`.
        return FileResponse(
            path,
            media_type=asset.media_type,
            headers={"Cache-Control": "public, max-age=604800"},
        )

    return ide_asset


LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
FORWARDING_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def dev_token_for(request: Request, settings: Settings) -> str | None:
    """A fresh development token for the IDE page, or None.

    Only in development and only for a browser on this machine: the connection comes from a
    loopback address, no proxy forwarded it (a reverse proxy on the same host connects from
    loopback on behalf of anyone), and the Host header names loopback too (otherwise a DNS
    rebinding page could read the token from a name that resolves to 127.0.0.1).
    """
    if settings.environment != "development" or request.client is None:
        return None
    try:
        if not ipaddress.ip_address(request.client.host).is_loopback:
            return None
    except ValueError:
        return None
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return None
    host = request.headers.get("host", "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name not in LOOPBACK_HOSTS:
        return None
    return mint_dev_token(settings)


def example_tabs(headers: str) -> list[dict[str, str]]:
    """The IDE's first-visit tabs: who am I, a campaigns page, a creation with variables."""
    return [
        {"query": DEFAULT_QUERY, "headers": headers},
        {"query": EXAMPLE_CAMPAIGNS, "headers": headers},
        {"query": EXAMPLE_CREATE, "variables": EXAMPLE_CREATE_VARIABLES, "headers": headers},
    ]


def bearer_headers(token: str) -> str:
    """The Headers tab's text for `token`."""
    return json.dumps({"Authorization": f"Bearer {token}"}, indent=2)


def render_graphiql(endpoint: str = "/graphql", *, dev_token: str | None = None) -> str:
    """The full GraphiQL page for `endpoint`, using only local assets.

    Falls back to an install-instructions page when the assets are missing, so the IDE
    never renders blank. `dev_token` (development, loopback callers only: see
    `main.IdeGraphQLRouter`) fills the Headers tab of every example tab, and replaces a
    missing, placeholder or expired token in the tabs the browser saved on an earlier visit
    (GraphiQL restores saved tabs instead of the defaults); a token the developer pasted
    that is still valid is left alone.
    """
    if missing_ide_assets():
        return render_ide_missing()
    headers = bearer_headers(dev_token) if dev_token else DEFAULT_HEADERS
    config = {
        "endpoint": endpoint,
        "tabs": example_tabs(headers),
        "devToken": dev_token,
        "tokenPlaceholder": TOKEN_PLACEHOLDER,
    }
    return _PAGE.format(
        css=html.escape(asset_url("graphiql.min.css")),
        react=html.escape(asset_url("react.production.min.js")),
        react_dom=html.escape(asset_url("react-dom.production.min.js")),
        graphiql=html.escape(asset_url("graphiql.min.js")),
        config=_script_json(config),
    )


def render_ide_missing() -> str:
    """A small page explaining how to install the IDE assets (no scripts, no URLs)."""
    missing = "\n".join(html.escape(str(p)) for p in missing_ide_assets())
    return _MISSING_PAGE.format(hint=html.escape(INSTALL_HINT), missing=missing)


def _package_version(package: str) -> str:
    """The installed version of an npm package, or "missing"."""
    try:
        manifest = json.loads((IDE_NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return "missing"
    return str(manifest.get("version", "unknown"))


def _script_json(value: object) -> str:
    """JSON safe to embed in an inline <script>: `</script>` and friends cannot break out."""
    text = json.dumps(value)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# Doubled braces are literal braces for str.format.
_PAGE: Final = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>GraphiQL</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="{css}" />
    <style>
      html, body {{ height: 100%; margin: 0; overflow: hidden; }}
      #graphiql {{ height: 100vh; }}
    </style>
  </head>
  <body>
    <div id="graphiql"><p style="font-family: sans-serif; padding: 1em">Loading GraphiQL…</p></div>
    <script src="{react}"></script>
    <script src="{react_dom}"></script>
    <script src="{graphiql}"></script>
    <script>
      (function () {{
        "use strict";
        const config = {config};
        const url = new URL(config.endpoint, window.location.href);
        const subscriptionUrl = new URL(url.href);
        subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

        // Sends the headers typed in the Headers tab with every request (introspection
        // too), except values still holding the placeholder: an unedited hint must not
        // reach the server as a broken token.
        const baseFetcher = GraphiQL.createFetcher({{
          url: url.href,
          subscriptionUrl: subscriptionUrl.href,
        }});
        function fetcher(params, opts) {{
          if (opts && opts.headers) {{
            const headers = {{}};
            for (const [name, value] of Object.entries(opts.headers)) {{
              if (!(typeof value === "string" && value.includes(config.tokenPlaceholder))) {{
                headers[name] = value;
              }}
            }}
            opts = Object.assign({{}}, opts, {{ headers: headers }});
          }}
          return baseFetcher(params, opts);
        }}

        // In development the page carries a fresh token: put it into saved tabs whose
        // token is missing, the placeholder, or expired. Anything else is left as typed.
        function stale(authorization) {{
          if (!authorization || authorization.includes(config.tokenPlaceholder)) return true;
          try {{
            const payload = authorization.replace(/^Bearer\\s+/i, "").split(".")[1];
            const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
            return typeof claims.exp === "number" && claims.exp * 1000 < Date.now();
          }} catch (e) {{
            return false;  // not a token we can read: the developer's own text
          }}
        }}
        // The text of a Headers editor with `token` in place of a stale one, or null when
        // the text holds a token to keep (or is not JSON: the developer's own text).
        function refreshed(text, token) {{
          let headers;
          try {{
            headers = text ? JSON.parse(text) : {{}};
          }} catch (e) {{
            return null;
          }}
          if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {{
            return null;
          }}
          if (!stale(headers.Authorization)) return null;
          headers.Authorization = "Bearer " + token;
          return JSON.stringify(headers, null, 2);
        }}
        function refreshSavedTabs(token) {{
          const headersKey = "graphiql:headers";
          const current = refreshed(localStorage.getItem(headersKey), token);
          if (current !== null && localStorage.getItem(headersKey) !== null) {{
            localStorage.setItem(headersKey, current);
          }}
          const key = "graphiql:tabState";
          let state;
          try {{
            state = JSON.parse(localStorage.getItem(key) || "null");
          }} catch (e) {{
            return;
          }}
          if (!state || !Array.isArray(state.tabs)) return;
          for (const tab of state.tabs) {{
            const text = refreshed(tab.headers, token);
            if (text !== null) tab.headers = text;
          }}
          localStorage.setItem(key, JSON.stringify(state));
        }}
        if (config.devToken) refreshSavedTabs(config.devToken);

        const root = ReactDOM.createRoot(document.getElementById("graphiql"));
        root.render(
          React.createElement(GraphiQL, {{
            fetcher: fetcher,
            defaultTabs: config.tabs,
            defaultHeaders: config.tabs[0].headers,
            defaultEditorToolsVisibility: "headers",
            isHeadersEditorEnabled: true,
            shouldPersistHeaders: true,
            inputValueDeprecation: true,
          }}),
        );
      }})();
    </script>
  </body>
</html>
"""

_MISSING_PAGE: Final = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>GraphiQL not installed</title>
    <link rel="icon" href="data:," />
  </head>
  <body style="font-family: sans-serif; max-width: 50em; margin: 2em auto">
    <h1>GraphiQL is not installed on this server</h1>
    <p>The GraphQL API itself works (POST queries to this URL). The in-browser IDE is
    served from local npm packages, which are missing. From the repository root run:</p>
    <pre>{hint}</pre>
    <p>then reload this page (no restart needed). Missing files:</p>
    <pre>{missing}</pre>
  </body>
</html>
"""
