"""Verify Hookline deliveries in your receiver (standard library only, no AWS).

    from hookline.receiver import VerificationError, verify

    try:
        verify(request.headers, raw_body, secret)   # raw bytes, before any JSON parsing
    except VerificationError as exc:
        return 401, exc.reason

Either signature scheme is accepted: Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; the timestamp must be within ``tolerance_seconds`` of now, any ``v1``
entry may match, which keeps a secret rotation seamless) or ``X-Hookline-Signature``
(``sha256=<hex>`` of the raw body; when ``X-Hookline-Timestamp`` is present it must be within the
tolerance too; during a secret rotation ``X-Hookline-Signature-Next`` may match instead). When the
Standard Webhooks headers are present they are the ones checked.
Checks fail closed: no secret, no signature or an unparsable header is a failure.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from typing import NamedTuple

from hookline.domain.signing import (
    BODY_SIGNATURE_PREFIX,
    HEADER_BODY_SIGNATURE,
    HEADER_BODY_SIGNATURE_NEXT,
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SIGNATURE_VERSION,
    body_signature,
    standard_signature,
)

HEADER_BODY_TIMESTAMP = "X-Hookline-Timestamp"
SCHEME_STANDARD = "standard-webhooks"
SCHEME_BODY = "x-hookline-signature"


class SignedMessage(NamedTuple):
    """What a verified Standard Webhooks signature covers besides the body."""

    message_id: str
    timestamp: int


class VerificationError(Exception):
    """The delivery is not authentic (or not fresh); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in headers.items()}


def _check_time(raw: str, tolerance_seconds: int, now: int) -> None:
    text = raw.strip()
    if not text.isdigit():
        raise VerificationError("invalid timestamp header")
    sent = int(text)
    if sent < now - tolerance_seconds:
        raise VerificationError("timestamp is too old")
    if sent > now + tolerance_seconds:
        raise VerificationError("timestamp is too far in the future")


def _decode_signature(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verify_standard(
    found: dict[str, str], body: bytes, secret: str, tolerance_seconds: int, now: int
) -> SignedMessage:
    msg_id = found.get(HEADER_ID, "").strip()
    timestamp = found.get(HEADER_TIMESTAMP, "").strip()
    signatures = found.get(HEADER_SIGNATURE, "").strip()
    if not (msg_id and timestamp and signatures):
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    _check_time(timestamp, tolerance_seconds, now)
    try:
        expected_entry = standard_signature(secret, msg_id, timestamp, body)
    except ValueError as exc:
        raise VerificationError(f"invalid secret: {exc}") from None
    expected = _decode_signature(expected_entry.partition(",")[2]) or b""
    saw_version = False
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        saw_version = True
        candidate = _decode_signature(value)
        # Compare every entry (no early exit) so timing does not reveal which one matched.
        if candidate is not None and hmac.compare_digest(candidate, expected):
            matched = True
    if not saw_version:
        raise VerificationError("no v1 signature in webhook-signature")
    if not matched:
        raise VerificationError("no matching signature")
    return SignedMessage(msg_id, int(timestamp))


def _verify_body(
    found: dict[str, str], body: bytes, secret: str, tolerance_seconds: int, now: int
) -> None:
    given = found.get(HEADER_BODY_SIGNATURE.lower(), "").strip()
    if not given.lower().startswith(BODY_SIGNATURE_PREFIX) or len(given) == len(
        BODY_SIGNATURE_PREFIX
    ):
        raise VerificationError("X-Hookline-Signature is not of the form sha256=<hex>")
    timestamp = found.get(HEADER_BODY_TIMESTAMP.lower())
    if timestamp is not None:
        _check_time(timestamp, tolerance_seconds, now)
    expected = body_signature(secret, body).encode()
    candidates = [given, found.get(HEADER_BODY_SIGNATURE_NEXT.lower(), "").strip()]
    matched = False
    for candidate in candidates:
        if candidate.lower().startswith(BODY_SIGNATURE_PREFIX):
            normalized = BODY_SIGNATURE_PREFIX + candidate[len(BODY_SIGNATURE_PREFIX) :].lower()
            matched |= hmac.compare_digest(normalized.encode(), expected)
    if not matched:
        raise VerificationError("no matching signature")


def _check_inputs(secret: str, body: bytes) -> None:
    if not secret:
        raise VerificationError("no secret configured")
    if not isinstance(body, bytes | bytearray):
        raise VerificationError("body must be the raw request bytes")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
    scheme: str | None = None,
) -> None:
    """Raise VerificationError unless ``body`` and ``headers`` were signed with ``secret``.

    ``scheme`` ("standard-webhooks" or "x-hookline-signature") checks that scheme only;
    by default the Standard Webhooks headers are checked when present, else the body scheme."""
    _check_inputs(secret, body)
    found = _lower_keys(headers)
    current = int(time.time()) if now is None else int(now)
    if scheme not in (None, SCHEME_STANDARD, SCHEME_BODY):
        raise ValueError(f"unknown signature scheme {scheme!r}")
    if scheme == SCHEME_BODY:
        _verify_body(found, bytes(body), secret, tolerance_seconds, current)
    elif scheme == SCHEME_STANDARD or any(
        name in found for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    ):
        _verify_standard(found, bytes(body), secret, tolerance_seconds, current)
    elif HEADER_BODY_SIGNATURE.lower() in found:
        _verify_body(found, bytes(body), secret, tolerance_seconds, current)
    else:
        raise VerificationError("no signature headers")


def verify_standard(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> SignedMessage:
    """The Standard Webhooks scheme only (its signature covers the id and the timestamp, so a
    replay can be told apart); returns what it covers. Raises VerificationError."""
    _check_inputs(secret, body)
    current = int(time.time()) if now is None else int(now)
    return _verify_standard(_lower_keys(headers), bytes(body), secret, tolerance_seconds, current)


def is_valid(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> bool:
    """True when ``verify`` would pass."""
    try:
        verify(headers, body, secret, tolerance_seconds=tolerance_seconds, now=now)
    except VerificationError:
        return False
    return True
