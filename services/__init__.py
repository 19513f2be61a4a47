"""Business rules. Both APIs call these functions; nothing here knows about HTTP or GraphQL."""
