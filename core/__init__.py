"""Cross-cutting pieces every layer needs: settings, auth, the database connection, errors."""
