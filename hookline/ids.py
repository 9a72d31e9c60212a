"""Identifiers, secrets and tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time


def new_id(prefix: str) -> str:
    """A sortable unique id: prefix, millisecond time and 64 random bits (e.g. evt_0192ab...)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def new_webhook_secret() -> str:
    """Standard Webhooks style secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> str:
    """An API key with 256 bits of randomness."""
    return "hk_" + secrets.token_urlsafe(32)


def new_token() -> str:
    """An incoming-webhook URL token with 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def digest(value: str) -> str:
    """The stored form of a key or token: its SHA-256 (the values carry 256 bits, so no salt or
    slow hash is needed; a lookup by digest stays one GetItem)."""
    return hashlib.sha256(value.encode()).hexdigest()
