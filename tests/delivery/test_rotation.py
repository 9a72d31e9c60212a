"""Secret rotation that breaks no receiver (hookline.domain.rotation), checked with the public
Standard Webhooks verifier and hookline.receiver on the requests a delivery would send."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

from hookline import clock, ids, wiring
from hookline.domain import rotation
from hookline.domain.delivery import build_request
from hookline.domain.models import Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.errors import Conflict, InvalidParam
from hookline.receiver import is_valid
from tests.delivery_helpers import make_community, make_event, make_webhook


def _request(webhook: Webhook, community: Any) -> tuple[bytes, dict[str, str]]:
    return build_request(
        webhook, make_event(community), delivery_id="dlv_rot", attempt=1, now=clock.now()
    )


def _standard_ok(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _body_only(headers: dict[str, str], name: str) -> dict[str, str]:
    """Only one body-scheme header, as a receiver that checks that one header sees it."""
    return {"X-Hookline-Signature": headers[name]}


@pytest.fixture
def setup(memory_services: wiring.Services) -> tuple[WebhookRepository, Any, Webhook]:
    community, _ = make_community(memory_services)
    webhook = make_webhook(memory_services, community.id, "https://example.com/h")
    return WebhookRepository(memory_services.tables.webhooks), community, webhook


def test_one_rotation_keeps_old_receivers_working_and_offers_the_new_secret(
    setup: tuple[WebhookRepository, Any, Webhook],
) -> None:
    repo, community, webhook = setup
    old = webhook.secret or ""
    new = ids.new_webhook_secret()
    rotated, until = rotation.rotate_secret(
        repo, community.id, webhook.id, secret=new, overlap_seconds=3600
    )
    assert rotated.secret == new
    assert until is not None
    assert timedelta(minutes=59) < clock.parse_iso(until) - clock.now() <= timedelta(hours=1)

    body, headers = _request(rotated, community)
    assert _standard_ok(old, body, headers) and _standard_ok(new, body, headers)
    # A receiver checking X-Hookline-Signature with the old secret keeps working ...
    assert is_valid(_body_only(headers, "X-Hookline-Signature"), body, old)
    assert not is_valid(_body_only(headers, "X-Hookline-Signature"), body, new)
    # ... and one that switched checks X-Hookline-Signature-Next with the new secret.
    assert is_valid(_body_only(headers, "X-Hookline-Signature-Next"), body, new)
    # hookline.receiver accepts either header.
    body_headers = {k: v for k, v in headers.items() if k.startswith("X-Hookline")}
    assert is_valid(body_headers, body, old) and is_valid(body_headers, body, new)


def test_three_quick_rotations_keep_every_promise(
    setup: tuple[WebhookRepository, Any, Webhook],
) -> None:
    repo, community, webhook = setup
    secrets = [webhook.secret or ""]
    for _ in range(3):
        rotated, until = rotation.rotate_secret(repo, community.id, webhook.id)
        assert until is not None
        secrets.append(rotated.secret or "")
    stored = repo.get(community.id, webhook.id)
    assert [p.secret for p in stored.previous_secrets] == secrets[:3]

    body, headers = _request(stored, community)
    assert len(headers["webhook-signature"].split(" ")) == 4
    for secret in secrets:
        assert _standard_ok(secret, body, headers), secret
    assert is_valid(_body_only(headers, "X-Hookline-Signature"), body, secrets[0])
    assert is_valid(_body_only(headers, "X-Hookline-Signature-Next"), body, secrets[-1])


def test_overlap_zero_switches_now_but_keeps_earlier_promises(
    setup: tuple[WebhookRepository, Any, Webhook],
) -> None:
    repo, community, webhook = setup
    first = webhook.secret or ""
    middle, _ = rotation.rotate_secret(repo, community.id, webhook.id)
    last, until = rotation.rotate_secret(repo, community.id, webhook.id, overlap_seconds=0)
    assert until is None
    body, headers = _request(last, community)
    assert _standard_ok(first, body, headers)  # promised 24 h by the first rotation
    assert not _standard_ok(middle.secret or "", body, headers)  # switched off at once
    assert _standard_ok(last.secret or "", body, headers)


def test_an_ended_overlap_no_longer_signs(
    setup: tuple[WebhookRepository, Any, Webhook], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, community, webhook = setup
    old = webhook.secret or ""
    rotated, _ = rotation.rotate_secret(repo, community.id, webhook.id, overlap_seconds=60)
    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "now", lambda: later)
    body, headers = build_request(
        rotated, make_event(community), delivery_id="dlv_late", attempt=1, now=later
    )
    assert "X-Hookline-Signature-Next" not in headers
    assert not is_valid(headers, body, old, now=int(later.timestamp()))
    assert is_valid(headers, body, rotated.secret or "", now=int(later.timestamp()))
    assert rotation.overlap_view(rotated) == {"previous_secrets": [], "overlap_ends_at": None}


def test_complete_ends_the_overlap_early(setup: tuple[WebhookRepository, Any, Webhook]) -> None:
    repo, community, webhook = setup
    old = webhook.secret or ""
    rotation.rotate_secret(repo, community.id, webhook.id)
    rotation.rotate_secret(repo, community.id, webhook.id)
    done = rotation.complete_rotation(repo, community.id, webhook.id)
    assert done.previous_secrets == []
    body, headers = _request(done, community)
    assert headers["X-Hookline-Signature"] and "X-Hookline-Signature-Next" not in headers
    assert not _standard_ok(old, body, headers)
    assert _standard_ok(done.secret or "", body, headers)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"overlap_seconds": -1}, "overlap_seconds"),
        ({"overlap_seconds": rotation.MAX_OVERLAP_SECONDS + 1}, "overlap_seconds"),
        ({"secret": "short"}, "secret"),
        ({"secret": "whsec_!!notbase64!!"}, "secret"),
    ],
)
def test_bad_rotation_requests_name_the_field(
    setup: tuple[WebhookRepository, Any, Webhook], fields: dict[str, Any], field: str
) -> None:
    repo, community, webhook = setup
    with pytest.raises(InvalidParam) as caught:
        rotation.rotate_secret(repo, community.id, webhook.id, **fields)
    assert caught.value.to_body()["data"]["field"] == field


def test_a_secret_already_in_use_is_refused(setup: tuple[WebhookRepository, Any, Webhook]) -> None:
    repo, community, webhook = setup
    first = webhook.secret or ""
    with pytest.raises(InvalidParam):
        rotation.rotate_secret(repo, community.id, webhook.id, secret=first)
    rotation.rotate_secret(repo, community.id, webhook.id)
    with pytest.raises(InvalidParam):  # still in overlap
        rotation.rotate_secret(repo, community.id, webhook.id, secret=first)


def test_rotations_beyond_the_cap_are_refused_rather_than_dropping_a_promise(
    setup: tuple[WebhookRepository, Any, Webhook],
) -> None:
    repo, community, webhook = setup
    for _ in range(rotation.MAX_SECRETS_IN_OVERLAP):
        rotation.rotate_secret(repo, community.id, webhook.id)
    before = repo.get(community.id, webhook.id)
    with pytest.raises(Conflict):
        rotation.rotate_secret(repo, community.id, webhook.id)
    assert repo.get(community.id, webhook.id).previous_secrets == before.previous_secrets
    rotation.rotate_secret(repo, community.id, webhook.id, overlap_seconds=0)  # adds no promise


def test_items_with_one_previous_secret_still_sign_with_it(
    setup: tuple[WebhookRepository, Any, Webhook],
) -> None:
    _, community, webhook = setup
    old = ids.new_webhook_secret()
    future = clock.iso(clock.now() + timedelta(hours=2))
    legacy = Webhook.model_validate(
        {
            **webhook.model_dump(exclude={"previous_secrets"}),
            "previous_secret": old,
            "previous_secret_expires_at": future,
        }
    )
    body, headers = _request(legacy, community)
    assert _standard_ok(old, body, headers)
