"""Route modules, one per resource; each route calls one domain function."""
