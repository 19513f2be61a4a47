#!/usr/bin/env bash
# Installs what is missing, and nothing that is already there. Safe to run every time.
#   scripts/ensure-tools.sh            Python env (uv + locked deps), IDE assets, database binary
#   scripts/ensure-tools.sh --test     the same, plus Chromium for the browser test and the
#                                      Node packages of the Apollo end-to-end test
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[ensure-tools] %s\n' "$*" >&2; }

# Trust the system CA store everywhere (a TLS-inspecting proxy's CA lives there).
export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
export PATH="$PWD/.bin:$HOME/.local/bin:/usr/local/go/bin:$HOME/go/bin:$PATH"

# 1. uv (into a venv of its own under .bin/, so no system Python is touched), then the locked
#    Python environment (.venv).
if ! command -v uv >/dev/null 2>&1; then
  say "installing uv from PyPI into .bin/uv-venv"
  python3 -m venv .bin/uv-venv
  .bin/uv-venv/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'
  ln -sf uv-venv/bin/uv .bin/uv
fi
# Compiled once here: with PYTHONDONTWRITEBYTECODE set (as in some CI images) every process
# would otherwise compile each module it imports (phonenumbers' geocoder alone takes seconds),
# and the tests start many (pytest-xdist workers, sending workers).
uv sync --frozen --quiet --compile-bytecode

# 2. GraphiQL's browser files (npm registry); the API still serves without them.
if [ ! -f ide/node_modules/.package-lock.json ] || [ ide/package-lock.json -nt ide/node_modules/.package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing the GraphQL IDE's assets (npm ci --prefix ide)"
    npm ci --prefix ide --ignore-scripts --no-audit --no-fund --loglevel=error
  else
    say "npm not found: the GraphQL IDE page will explain how to install its assets"
  fi
fi

# 3. A database server binary, unless MONGODB_URI points at one.
if [ -z "${MONGODB_URI:-}" ]; then
  uv run --frozen python -m scripts.dbserver build
fi

# 4. Chromium, for the browser test of the IDE.
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian's chromium for the browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  else
    say "chromium is missing and cannot be installed without root: apt-get install chromium"
    exit 1
  fi
fi

# 5. The @apollo/client end-to-end test's Node packages (npm registry), from their lock file.
if [ "${1:-}" = "--test" ]; then
  if [ ! -f e2e/apollo/node_modules/.package-lock.json ] || [ e2e/apollo/package-lock.json -nt e2e/apollo/node_modules/.package-lock.json ]; then
    if command -v npm >/dev/null 2>&1; then
      say "installing the Apollo end-to-end test's packages (npm ci --prefix e2e/apollo)"
      npm ci --prefix e2e/apollo --ignore-scripts --no-audit --no-fund --loglevel=error
      rm -rf e2e/apollo/dist
    else
      say "npm not found: the Apollo end-to-end test needs Node.js and npm (apt-get install -y nodejs npm)"
      exit 1
    fi
  fi
  # The browser bundle of the same client, for the cross-origin (CORS) browser test.
  if [ ! -f e2e/apollo/dist/apollo-browser.js ] || [ e2e/apollo/browser.mjs -nt e2e/apollo/dist/apollo-browser.js ]; then
    say "bundling the Apollo client for the browser test (npm run build --prefix e2e/apollo)"
    npm run build --prefix e2e/apollo --silent
  fi
fi
