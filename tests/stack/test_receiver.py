"""hookline.receiver.verify: what our users run in their receivers."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time

import pytest
import standardwebhooks

from hookline.domain.signing import sign_headers
from hookline.ids import new_webhook_secret
from hookline.receiver import VerificationError, is_valid, verify

BODY = b'{"event":"member.joined","data":{"name":"Ana"}}'
NOW = 1_800_000_000


def _signed(secret: str, previous: str | None = None, ts: int = NOW) -> dict[str, str]:
    return sign_headers(
        secret=secret,
        previous_secrets=[previous] if previous else [],
        message_id="msg_9",
        timestamp=ts,
        body=BODY,
    )


def _standard_only(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("webhook-")}


def _body_only(headers: dict[str, str]) -> dict[str, str]:
    return {"X-Hookline-Signature": headers["X-Hookline-Signature"]}


def _reason(headers: dict[str, str], body: bytes, secret: str, **kwargs: int) -> str:
    with pytest.raises(VerificationError) as info:
        verify(headers, body, secret, **kwargs)
    return info.value.reason


def test_all_our_headers_verify() -> None:
    secret = new_webhook_secret()
    verify(_signed(secret), BODY, secret, now=NOW)
    assert is_valid(_signed(secret), BODY, secret, now=NOW)


def test_standard_headers_alone_verify_case_insensitively() -> None:
    secret = new_webhook_secret()
    headers = {k.upper(): v for k, v in _standard_only(_signed(secret)).items()}
    verify(headers, BODY, secret, now=NOW)


def test_body_signature_alone_verifies() -> None:
    secret = "plain-secret"
    headers = {"x-hookline-signature": _signed(secret)["X-Hookline-Signature"]}
    verify(headers, BODY, secret, now=NOW)


def test_body_signature_computed_like_the_peer_snippets() -> None:
    secret = new_webhook_secret()
    value = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    verify({"X-Hookline-Signature": value}, BODY, secret)
    verify({"X-Hookline-Signature": value.upper().replace("SHA256=", "sha256=")}, BODY, secret)


def test_signatures_from_the_standardwebhooks_library_verify() -> None:
    secret = new_webhook_secret()
    ts = int(time.time())
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    signature = standardwebhooks.Webhook(secret).sign("msg_lib", moment, BODY.decode())
    headers = {
        "webhook-id": "msg_lib",
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }
    verify(headers, BODY, secret)


def test_rotation_both_secrets_verify() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    headers = _standard_only(_signed(new, previous=old))
    verify(headers, BODY, old, now=NOW)
    verify(headers, BODY, new, now=NOW)
    assert _reason(headers, BODY, new_webhook_secret(), now=NOW) == "no matching signature"


def test_unknown_versions_and_garbage_entries_are_skipped() -> None:
    secret = new_webhook_secret()
    headers = _standard_only(_signed(secret))
    headers["webhook-signature"] = "v2,abc v1,!!! " + headers["webhook-signature"]
    verify(headers, BODY, secret, now=NOW)
    headers["webhook-signature"] = "v2,abc"
    assert _reason(headers, BODY, secret, now=NOW) == "no v1 signature in webhook-signature"


def test_tampered_body_fails() -> None:
    secret = new_webhook_secret()
    headers = _signed(secret)
    assert _reason(headers, BODY + b" ", secret, now=NOW) == "no matching signature"
    body_only = _body_only(headers)
    assert _reason(body_only, BODY + b" ", secret, now=NOW) == "no matching signature"


def test_wrong_secret_fails_both_schemes() -> None:
    secret, other = new_webhook_secret(), new_webhook_secret()
    headers = _signed(secret)
    assert not is_valid(headers, BODY, other, now=NOW)
    assert not is_valid(_body_only(headers), BODY, other, now=NOW)


def test_timestamp_tolerance() -> None:
    secret = new_webhook_secret()
    headers = _signed(secret)
    verify(headers, BODY, secret, now=NOW + 300)
    verify(headers, BODY, secret, now=NOW - 300)
    assert _reason(headers, BODY, secret, now=NOW + 301) == "timestamp is too old"
    assert _reason(headers, BODY, secret, now=NOW - 301) == "timestamp is too far in the future"
    verify(headers, BODY, secret, now=NOW + 3000, tolerance_seconds=3600)


def test_hookline_timestamp_header_is_checked_when_present() -> None:
    secret = new_webhook_secret()
    headers = _body_only(_signed(secret)) | {"X-Hookline-Timestamp": str(NOW)}
    verify(headers, BODY, secret, now=NOW + 10)
    assert _reason(headers, BODY, secret, now=NOW + 1000) == "timestamp is too old"
    headers["X-Hookline-Timestamp"] = "yesterday"
    assert _reason(headers, BODY, secret, now=NOW) == "invalid timestamp header"


def test_standard_headers_take_precedence_and_must_be_complete() -> None:
    secret = new_webhook_secret()
    headers = _signed(secret)
    del headers["webhook-timestamp"]
    assert "missing" in _reason(headers, BODY, secret, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hookline-Signature": ""},
        {"X-Hookline-Signature": "sha256="},
        {"X-Hookline-Signature": "md5=abc"},
        {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": ""},
        {"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"},
    ],
)
def test_fails_closed_on_missing_or_empty_signatures(headers: dict[str, str]) -> None:
    assert not is_valid(headers, BODY, new_webhook_secret(), now=NOW)


def test_fails_closed_on_empty_secret() -> None:
    headers = _signed(new_webhook_secret())
    assert _reason(headers, BODY, "", now=NOW) == "no secret configured"


def test_invalid_whsec_secret_is_a_verification_error() -> None:
    headers = _standard_only(_signed(new_webhook_secret()))
    assert _reason(headers, BODY, "whsec_!!!", now=NOW).startswith("invalid secret")


def test_body_must_be_bytes() -> None:
    secret = new_webhook_secret()
    with pytest.raises(VerificationError):
        verify(_signed(secret), BODY.decode(), secret, now=NOW)  # type: ignore[arg-type]
