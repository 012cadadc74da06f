"""The GraphQL API: schema, resolvers, execution and the HTTP transport."""
