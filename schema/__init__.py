"""GraphQL types, one module per domain; the schema is assembled in `resolvers.root`."""
