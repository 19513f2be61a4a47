# The two commands: `make run` serves the app on an embedded database, `make test` runs everything.
SHELL := /bin/bash
export PATH := $(CURDIR)/.bin:$(HOME)/.local/bin:/usr/local/go/bin:$(HOME)/go/bin:$(PATH)
# Trust the system's CA store (uv otherwise uses its own roots, which a TLS proxy breaks).
export UV_SYSTEM_CERTS := 1
export UV_NATIVE_TLS := 1
# Python may keep compiled modules (some images forbid it, and then every process compiles
# what it imports again: seconds for each pytest worker and sending worker).
unexport PYTHONDONTWRITEBYTECODE
TEST_WORKERS ?= 3
HOST ?= 127.0.0.1
PORT ?= 8000
RUN := uv run --frozen

.PHONY: run test fuzz worker token org-rate recount bench lint format typecheck schema ide

run: ## Serve on http://$(HOST):$(PORT) (GraphQL IDE at /graphql, REST under /api)
	@scripts/ensure-tools.sh
	$(RUN) python -m scripts.dbserver run --data-dir .data/dev -- \
	  $(RUN) uvicorn main:create_app --factory --host $(HOST) --port $(PORT)

test: ## The whole suite on a throwaway database (TEST_WORKERS processes), then ruff, mypy and the schema drift check
	@scripts/ensure-tools.sh --test
	$(RUN) pytest -n $(TEST_WORKERS) --dist worksteal
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy .
	$(RUN) python -m scripts.export_schema --check

fuzz: ## A longer property-based run of both APIs (every boundary value, 200 examples per operation)
	@scripts/ensure-tools.sh --test
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} FUZZ_COVERAGE=1 $(RUN) pytest tests/test_fuzz_api.py

worker: ## A sending worker on the same database as `make run` (any number may run)
	@scripts/ensure-tools.sh >/dev/null
	$(RUN) python -m scripts.dbserver attach --data-dir .data/dev -- $(RUN) python -m worker

org-rate: ## An organization's own sending rate on make run's database: ARGS="--org ID --rate 20"
	@scripts/ensure-tools.sh >/dev/null
	@$(RUN) python -m scripts.dbserver attach --data-dir .data/dev -- $(RUN) python -m scripts.org_rate $(ARGS)

recount: ## Put organizations' running totals right on make run's database: ARGS="--org ID" or "--all"
	@scripts/ensure-tools.sh >/dev/null
	@$(RUN) python -m scripts.dbserver attach --data-dir .data/dev -- $(RUN) python -m scripts.recount $(ARGS)

token: ## Print a development token for the IDE's Headers tab
	@scripts/ensure-tools.sh >/dev/null
	@$(RUN) python -m scripts.token $(ARGS)

bench: ## Creation, lookups on a loaded database (20k and 200k contacts), GraphQL vs REST, replies, against the raw floor
	@scripts/ensure-tools.sh
	$(RUN) python -m scripts.dbserver run --data-dir .data/bench -- \
	  bash -c '$(RUN) python -m bench.create_campaign && $(RUN) python -m bench.scale && $(RUN) python -m bench.graphql_overhead && $(RUN) python -m bench.server_guarantees && $(RUN) python -m bench.replies'

lint:
	$(RUN) ruff check . && $(RUN) ruff format --check .

format:
	$(RUN) ruff format . && $(RUN) ruff check --fix .

typecheck:
	$(RUN) mypy .

schema: ## Rewrite schema.graphql after a schema change
	$(RUN) python -m scripts.export_schema

ide: ## Install the GraphQL IDE's browser assets (GraphiQL, React) from the npm registry
	npm ci --prefix ide --ignore-scripts --no-audit --no-fund
