"""Campaigns: creation, recipients, templates, edits, status moves, queries and live stats."""
