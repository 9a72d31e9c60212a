"""Opaque pagination cursors shared by the table adapters, and their signature.

A cursor is the key of the last item returned, base64url-encoded. Decoding accepts only the exact
key set of the table or index queried, inside the partition (and range prefix) being queried, so
a cursor from one community's list cannot open another's and a hand-made one cannot reach
storage. The API signs every cursor it hands out (``sign``/``verify``, HMAC-SHA256), so a
cursor that Hookline did not issue is refused before it is decoded at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from hookline.errors import InvalidCursor

#: Label that derives the cursor key from a configured secret (never the secret itself).
_KEY_LABEL = b"hookline/cursor-signing/v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def key_names(hash_attr: str, range_attr: str) -> tuple[str, ...]:
    """The attributes a cursor of this table or index holds (table keys first, no repeats)."""
    return tuple(dict.fromkeys(("pk", "sk", hash_attr, range_attr)))


def encode(key: dict[str, Any]) -> str:
    return _b64(json.dumps(key, separators=(",", ":"), sort_keys=True).encode())


def after(item: dict[str, Any], hash_attr: str, range_attr: str) -> str:
    """The cursor that continues a listing after `item` (table and index keys)."""
    return encode({name: item[name] for name in key_names(hash_attr, range_attr)})


def decode(
    cursor: str,
    *,
    partition_attr: str,
    partition: str,
    range_attr: str = "sk",
    prefix: str | None = None,
    after: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """The start key in `cursor`, checked against the query it continues (InvalidCursor)."""
    try:
        key = json.loads(_unb64(cursor))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(key, dict) or set(key) != set(key_names(partition_attr, range_attr)):
        raise InvalidCursor()
    if not all(isinstance(v, str) and v for v in key.values()):
        raise InvalidCursor()
    if key[partition_attr] != partition:
        raise InvalidCursor()
    position = key[range_attr]
    if prefix is not None and not position.startswith(prefix):
        raise InvalidCursor()
    # A start key outside the range bounds is refused by DynamoDB (a cursor of other since/until).
    if (after is not None and position <= after) or (before is not None and position >= before):
        raise InvalidCursor("cursor does not belong to this since/until range")
    return key


def signing_key(secret: str) -> bytes:
    """The cursor key derived from a configured secret; refuses to sign with an empty one."""
    if not secret:
        raise RuntimeError("no secret is configured to sign cursors with")
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def sign(cursor: str, key: bytes) -> str:
    """`cursor` with its HMAC appended: what the API hands out as next_cursor."""
    return f"{cursor}.{_b64(hmac.new(key, cursor.encode(), hashlib.sha256).digest())}"


def verify(signed: str, key: bytes) -> str:
    """The cursor inside a signed one; InvalidCursor unless Hookline issued it with this key."""
    cursor, dot, mac = signed.rpartition(".")
    if not dot or not cursor:
        raise InvalidCursor()
    expected = _b64(hmac.new(key, cursor.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise InvalidCursor()
    return cursor
