"""The one signer, checked against the public Standard Webhooks and Svix verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import standardwebhooks
import svix.webhooks

from hookline.domain import signing
from hookline.domain.signing import body_signature, sign_headers, standard_signature
from hookline.ids import new_webhook_secret

BODY = '{"event":"post.created","data":{"title":"Grüße","n":1}}'.encode()


def _headers(secret: str | None, previous: str | None = None, body: bytes = BODY) -> dict[str, str]:
    return sign_headers(
        secret=secret,
        previous_secrets=[previous] if previous is not None else [],
        message_id="msg_0001",
        timestamp=int(time.time()),
        body=body,
    )


def test_headers_verify_with_standardwebhooks_and_svix() -> None:
    secret = new_webhook_secret()
    headers = _headers(secret)
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Hookline-Signature",
    }
    assert headers["webhook-id"] == "msg_0001"
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "event": "post.created",
        "data": {"title": "Grüße", "n": 1},
    }
    svix.webhooks.Webhook(secret).verify(BODY, headers)


def test_tampered_body_fails_public_verifiers() -> None:
    secret = new_webhook_secret()
    headers = _headers(secret)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(BODY.replace(b"1", b"2"), headers)


def test_rotation_signs_with_both_secrets() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    headers = _headers(new, previous=old)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        svix.webhooks.Webhook(secret).verify(BODY, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_webhook_secret()).verify(BODY, headers)
    # The body scheme: one header per secret, the replaced one first, the new one "Next".
    assert headers["X-Hookline-Signature"] == body_signature(old, BODY)
    assert headers["X-Hookline-Signature-Next"] == body_signature(new, BODY)


def test_every_secret_in_overlap_signs_a_v1_entry() -> None:
    oldest, middle, new = (new_webhook_secret() for _ in range(3))
    headers = sign_headers(
        secret=new,
        previous_secrets=[oldest, middle],
        message_id="msg_0002",
        timestamp=int(time.time()),
        body=BODY,
    )
    assert len(headers["webhook-signature"].split(" ")) == 3
    for secret in (oldest, middle, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        svix.webhooks.Webhook(secret).verify(BODY, headers)
    assert headers["X-Hookline-Signature"] == body_signature(oldest, BODY)
    assert headers["X-Hookline-Signature-Next"] == body_signature(new, BODY)


def test_no_next_header_outside_an_overlap() -> None:
    assert "X-Hookline-Signature-Next" not in _headers(new_webhook_secret())


def test_same_previous_secret_is_not_repeated() -> None:
    secret = new_webhook_secret()
    assert " " not in _headers(secret, previous=secret)["webhook-signature"]


def test_secret_without_prefix_is_keyed_by_its_utf8_bytes() -> None:
    secret = "my plain sécret"
    headers = _headers(secret)
    standardwebhooks.Webhook(secret.encode()).verify(BODY, headers)
    svix.webhooks.Webhook(secret.encode()).verify(BODY, headers)


def test_unpadded_whsec_secret_is_accepted_like_the_libraries() -> None:
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    unpadded = padded.rstrip("=")
    assert unpadded != padded
    headers = _headers(unpadded)
    standardwebhooks.Webhook(padded).verify(BODY, headers)


def test_body_signature_matches_the_peer_php_and_node_snippets() -> None:
    # PHP: 'sha256=' . hash_hmac('sha256', $raw_body, $secret)
    # Node: 'sha256=' + crypto.createHmac('sha256', secret).update(payload).digest('hex')
    secret = new_webhook_secret()
    headers = _headers(secret)
    expected = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Hookline-Signature"] == expected


def test_standard_signature_by_hand() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    signed = b"msg_1.1700000000." + BODY
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert standard_signature(secret, "msg_1", 1700000000, BODY) == f"v1,{digest}"
    assert standard_signature(secret, "msg_1", "1700000000", BODY) == f"v1,{digest}"


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_means_no_signature_headers(secret: str | None) -> None:
    assert _headers(secret) == {}
    assert _headers(secret, previous=new_webhook_secret()) == {}


def test_empty_previous_secret_is_ignored() -> None:
    secret = new_webhook_secret()
    assert " " not in _headers(secret, previous="")["webhook-signature"]


@pytest.mark.parametrize("bad", ["whsec_", "whsec_!!!notbase64", "whsec_a"])
def test_malformed_whsec_secret_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        signing.validate_secret(bad)
    with pytest.raises(ValueError):
        _headers(bad)


def test_empty_key_is_never_used() -> None:
    with pytest.raises(ValueError):
        body_signature("", BODY)
    with pytest.raises(ValueError):
        signing.validate_secret("")


def test_empty_body_is_signed() -> None:
    secret = new_webhook_secret()
    headers = _headers(secret, body=b"")
    standardwebhooks.Webhook(secret).verify(b"", headers, json_parse=False)
