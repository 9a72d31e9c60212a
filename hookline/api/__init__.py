"""The REST API: one powertools resolver, its error mapping and the route modules."""
