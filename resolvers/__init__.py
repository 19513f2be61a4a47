"""The two thin API surfaces: GraphQL resolvers and the legacy REST routes (`resolvers.rest`)."""
