"""SearchService: the public API, composing the other services."""
