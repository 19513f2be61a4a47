"""Organizations: their settings, and the quiet hours those settings define."""
