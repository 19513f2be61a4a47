"""The self-hosted GraphiQL page for `GET /graphql`, with its example tabs.

The page references only the local files of `resolvers.assets` (no `http(s)://` URL appears
in it), so it works on machines that reach no CDN; when those files are missing it explains how
to install them instead of rendering blank.
"""

from __future__ import annotations

import html
import json
from typing import Final

from resolvers.assets import INSTALL_HINT, asset_url, missing_ide_assets

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
    `resolvers.dev_tokens`) fills the Headers tab of every example tab, and replaces a
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
