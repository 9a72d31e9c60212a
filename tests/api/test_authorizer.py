"""The REQUEST authorizer, driven by events/authorizer-request.json."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from hookline.domain import communities
from hookline.domain.repositories import CommunityRepository
from hookline_dev.local.lambdas import load_handler
from tests.api_events import load
from tests.conftest import OPERATOR_KEY


def _event(authorization: str | None) -> dict[str, Any]:
    event = copy.deepcopy(load("authorizer-request.json"))
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Authorization"}
    if authorization is not None:
        event["headers"]["Authorization"] = authorization
    return event


@pytest.fixture
def admin_key(memory_services: Any) -> tuple[str, str, str]:
    repo = CommunityRepository(memory_services.tables.communities)
    community, key, plaintext = communities.create_community(
        repo, name="Acme", site_url="https://acme.example"
    )
    return community.id, key.id, plaintext


def _authorize(authorization: str | None, ctx: Any) -> dict[str, Any]:
    return load_handler("authorizer")(_event(authorization), ctx)


def test_bearer_key_allows_the_whole_api(
    admin_key: tuple[str, str, str], lambda_context: Any
) -> None:
    community_id, key_id, plaintext = admin_key
    answer = _authorize(f"Bearer {plaintext}", lambda_context)
    statement = answer["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    # Cached per key for every route, so the resource covers the whole stage.
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:abc123/dev/*/*"]
    assert answer["principalId"] == key_id
    assert answer["context"] == {"role": "admin", "community_id": community_id, "key_id": key_id}


def test_basic_auth_with_key_as_password(
    admin_key: tuple[str, str, str], lambda_context: Any
) -> None:
    _, key_id, plaintext = admin_key
    header = "Basic " + base64.b64encode(f"admin:{plaintext}".encode()).decode()
    assert _authorize(header, lambda_context)["principalId"] == key_id


def test_operator_key(memory_services: Any, lambda_context: Any) -> None:
    answer = _authorize(f"Bearer {OPERATOR_KEY}", lambda_context)
    assert answer["context"]["role"] == "operator"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer hk_not_a_real_key",
        "Token abc",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"admin:").decode(),
    ],
)
def test_rejects_missing_and_unknown_keys(
    memory_services: Any, lambda_context: Any, header: str | None
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        _authorize(header, lambda_context)


def test_revoked_key_is_rejected(
    memory_services: Any, admin_key: tuple[str, str, str], lambda_context: Any
) -> None:
    community_id, key_id, plaintext = admin_key
    communities.revoke_key(
        CommunityRepository(memory_services.tables.communities), community_id, key_id
    )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        _authorize(f"Bearer {plaintext}", lambda_context)
