"""ProbeLog search: zero-shot model search by text-to-logit matching."""

__version__ = "0.1.0"
