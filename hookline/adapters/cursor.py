"""Opaque pagination cursors shared by the table adapters.

A cursor is the key of the last item returned, base64url-encoded. It is checked against the
partition being queried, so a cursor from one community's list cannot open another's.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hookline.errors import InvalidCursor


def encode(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after(item: dict[str, Any], hash_attr: str, range_attr: str) -> str:
    """The cursor that continues a listing after `item` (table and index keys)."""
    keys = ("pk", "sk", hash_attr, range_attr)
    return encode({name: item[name] for name in keys})


def decode(cursor: str, *, partition_attr: str, partition: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(key, dict) or key.get(partition_attr) != partition:
        raise InvalidCursor()
    if not all(isinstance(v, str) for v in key.values()):
        raise InvalidCursor()
    return key
