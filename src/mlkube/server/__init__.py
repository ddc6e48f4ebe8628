"""The HTTP prediction server."""
