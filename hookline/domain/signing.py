"""The one signer: every signature Hookline sends, and the functions receivers check them with.

Two schemes travel on each signed delivery:

* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``, the
  latter a space-separated list of ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.
  A ``whsec_`` secret is keyed by the base64 it carries; any other secret by its UTF-8 bytes.
  While secrets are being rotated, every secret still in its overlap signs one more ``v1,`` entry.
* ``X-Hookline-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, keyed by the secret
  string exactly as the user sees it (the convention of the peer PHP/Node snippets). One header
  holds one value, so during an overlap it stays on the oldest secret still promised (receivers
  that were never changed keep working) and ``X-Hookline-Signature-Next`` carries the new one.

An unset or empty secret means an unsigned delivery: we never sign with an empty key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_BODY_SIGNATURE = "X-Hookline-Signature"
HEADER_BODY_SIGNATURE_NEXT = "X-Hookline-Signature-Next"

SIGNATURE_VERSION = "v1"
BODY_SIGNATURE_PREFIX = "sha256="


def signing_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks scheme for a secret.

    Raises ValueError for a ``whsec_`` secret whose remainder is not base64 or decodes to nothing.
    """
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        encoded += "=" * (-len(encoded) % 4)  # unpadded base64 is common; accept it as peers do
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a whsec_ secret must carry standard base64 after the prefix") from exc
        if not key:
            raise ValueError("a whsec_ secret must carry a non-empty key")
        return key
    return secret.encode("utf-8")


def validate_secret(secret: str) -> None:
    """Raise ValueError when a user-supplied secret cannot sign (call at create/update time)."""
    if not secret:
        raise ValueError("secret must not be empty")
    signing_key(secret)


def standard_signature(key_secret: str, msg_id: str, ts: int | str, body: bytes) -> str:
    """One ``v1,<base64>`` entry of the ``webhook-signature`` header."""
    key = signing_key(key_secret)
    if not key:
        raise ValueError("refusing to sign with an empty key")
    signed = f"{msg_id}.{ts}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def body_signature(secret: str, body: bytes) -> str:
    """The ``X-Hookline-Signature`` value: ``sha256=<hex HMAC of the raw body>``."""
    if not secret:
        raise ValueError("refusing to sign with an empty key")
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return BODY_SIGNATURE_PREFIX + digest


def sign_headers(
    *,
    secret: str | None,
    previous_secrets: Sequence[str] = (),
    message_id: str,
    timestamp: int,
    body: bytes,
) -> dict[str, str]:
    """The signature headers of one delivery; ``{}`` when the webhook has no secret.

    ``previous_secrets`` (oldest first) are the secrets still in a rotation's overlap: each adds
    a ``v1,`` entry, the oldest signs ``X-Hookline-Signature`` and the current secret moves to
    ``X-Hookline-Signature-Next``. Without them ``X-Hookline-Signature`` uses the current secret.
    """
    if not secret:
        return {}
    previous = [p for p in dict.fromkeys(previous_secrets) if p and p != secret]
    entries = [standard_signature(s, message_id, timestamp, body) for s in (secret, *previous)]
    headers = {
        HEADER_ID: message_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: " ".join(entries),
    }
    if previous:
        headers[HEADER_BODY_SIGNATURE] = body_signature(previous[0], body)
        headers[HEADER_BODY_SIGNATURE_NEXT] = body_signature(secret, body)
    else:
        headers[HEADER_BODY_SIGNATURE] = body_signature(secret, body)
    return headers
