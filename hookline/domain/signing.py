"""The one signer: every signature Hookline sends, and the functions receivers check them with.

Two schemes travel on each signed delivery:

* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``, the
  latter a space-separated list of ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.
  A ``whsec_`` secret is keyed by the base64 it carries; any other secret by its UTF-8 bytes.
  While a secret is being rotated, the previous secret signs a second ``v1,`` entry.
* ``X-Hookline-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, keyed by the secret
  string exactly as the user sees it (the convention of the peer PHP/Node snippets).

An unset or empty secret means an unsigned delivery: we never sign with an empty key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_BODY_SIGNATURE = "X-Hookline-Signature"

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
    previous_secret: str | None,
    message_id: str,
    timestamp: int,
    body: bytes,
) -> dict[str, str]:
    """The signature headers of one delivery; ``{}`` when the webhook has no secret.

    ``previous_secret`` (set during a rotation) adds a second ``v1,`` entry so receivers still
    holding the old secret keep verifying. ``X-Hookline-Signature`` uses the current secret only.
    """
    if not secret:
        return {}
    entries = [standard_signature(secret, message_id, timestamp, body)]
    if previous_secret and previous_secret != secret:
        entries.append(standard_signature(previous_secret, message_id, timestamp, body))
    return {
        HEADER_ID: message_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: " ".join(entries),
        HEADER_BODY_SIGNATURE: body_signature(secret, body),
    }
