"""The operator key: from the environment (local stack) or an SSM SecureString (AWS)."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from hookline.adapters import aws
from hookline.config import Settings

_CACHE_SECONDS = 300
_cached: tuple[float, str] | None = None


@lru_cache(maxsize=1)
def _ssm() -> Any:
    return aws.client("ssm")


def operator_key(settings: Settings) -> str:
    """The configured operator key ('' when none). The SSM value is cached for five minutes."""
    global _cached
    if settings.operator_key:
        return settings.operator_key
    if not settings.operator_key_parameter:
        return ""
    if _cached is None or time.monotonic() - _cached[0] > _CACHE_SECONDS:
        response = _ssm().get_parameter(Name=settings.operator_key_parameter, WithDecryption=True)
        _cached = (time.monotonic(), response["Parameter"]["Value"])
    return _cached[1]
