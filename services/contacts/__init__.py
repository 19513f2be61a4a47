"""Contacts: creation that reuses phones, edits and opt-outs, queries, and CSV rows."""
