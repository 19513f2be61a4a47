"""The browser files of the two self-hosted pages: GraphiQL at `/graphql`, Swagger UI at `/docs`.

Both pages' stock versions load their scripts from a public CDN, which air-gapped machines
cannot reach, so the npm packages pinned in `ide/package.json` (`make ide`) are served by the
API itself under `IDE_ASSET_PREFIX`. Only a fixed list of files is served, each through its own
route: the rest of `node_modules` is never exposed and no path from the request reaches the disk.
A missing install never takes the API down: the files are looked up on every call, so
installing them while the server runs makes the pages work on the next load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.responses import FileResponse, PlainTextResponse, Response

logger = logging.getLogger(__name__)

IDE_ASSET_PREFIX: Final = "/ide/assets"
"""URL prefix under which the browser files are served."""

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
IDE_NODE_MODULES: Path = REPO_ROOT / "ide" / "node_modules"
"""Where `npm ci --prefix ide` installs the packages; a module variable so tests can move it."""

INSTALL_HINT: Final = "npm ci --prefix ide  (or: make ide)"

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


def _package_version(package: str) -> str:
    """The installed version of an npm package, or "missing"."""
    try:
        manifest = json.loads((IDE_NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return "missing"
    return str(manifest.get("version", "unknown"))
