"""Identifiers, secrets and tokens."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time

_lock = threading.Lock()
_last = (0, 0)


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: prefix, milliseconds, a per-millisecond sequence
    (so ids made in one process within the same millisecond keep their order) and 48 random bits.
    """
    global _last
    with _lock:
        millis = int(time.time() * 1000)
        last_millis, sequence = _last
        if millis <= last_millis:
            millis, sequence = last_millis, sequence + 1
            if sequence > 0xFFFF:
                millis, sequence = millis + 1, 0
        else:
            sequence = 0
        _last = (millis, sequence)
    return f"{prefix}_{millis:012x}{sequence:04x}{secrets.token_hex(6)}"


def derived_id(prefix: str, millis: int, *parts: str) -> str:
    """A deterministic id that sorts by ``millis`` as new_id's do: the same parts give the same
    id (80 bits of their SHA-256 after the time)."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{prefix}_{millis:012x}{digest[:20]}"


def first_id_at(prefix: str, millis: int) -> str:
    """A bound below every id of ``prefix`` made at or after ``millis`` (and above those made
    before), for range queries on ids."""
    return f"{prefix}_{max(millis, 0):012x}"


def new_webhook_secret() -> str:
    """Standard Webhooks style secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> str:
    """An API key with 256 bits of randomness."""
    return "hk_" + secrets.token_urlsafe(32)


#: What new_token makes (43 URL-safe base64 characters). The template's WAF rule refuses other
#: /v1/hooks/ paths with the same pattern, before a Lambda runs.
TOKEN_PATTERN = "[A-Za-z0-9_-]{43}"
_TOKEN = re.compile(TOKEN_PATTERN)


def new_token() -> str:
    """An incoming-webhook URL token with 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def is_token_shaped(value: str) -> bool:
    """Could this be a token new_token made? Anything else is refused without a lookup."""
    return bool(_TOKEN.fullmatch(value))


def digest(value: str) -> str:
    """The stored form of a key or token: its SHA-256 (the values carry 256 bits, so no salt or
    slow hash is needed; a lookup by digest stays one GetItem)."""
    return hashlib.sha256(value.encode()).hexdigest()
