"""Storage: the tenant scope and read strategies, list positions, pages, changes, idempotency."""
