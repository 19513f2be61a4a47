"""The legacy REST compatibility surface under `/api`, byte-compatible with existing callers."""
