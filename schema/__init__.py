"""The GraphQL schema: Strawberry types in this package, resolvers in `resolvers/`."""

from schema.root import schema

__all__ = ["schema"]
