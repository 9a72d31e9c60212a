"""Hookline: signed webhook delivery and incoming webhooks for community platforms."""

__version__ = "0.1.0"
