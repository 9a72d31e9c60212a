"""The Idempotency-Key header of creating POSTs, through powertools idempotency.

A request with the header runs once per (community, operation, key) for 24 hours: the same key
with the same body answers the stored result again (with ``Idempotent-Replayed: true``) and does
nothing twice; the same key with another body, or while the first request still runs, is a 409
``conflict`` naming the header. Requests without the header are not recorded. Answers that show
a secret once (a webhook's secret, an API key) are stored without it: a replay shows the masked
form, like a GET.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header

from hookline.errors import InvalidParam

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
KEEP_SECONDS = 24 * 60 * 60

#: The 409 of a route taking Idempotency-Key, for its OpenAPI `responses=`.
KEY_CONFLICT = (
    f"The {HEADER} was already used with another body, or its first request is still running."
)


def responses(status: int, description: str, conflict: str = KEY_CONFLICT) -> dict[int, Any]:
    """OpenAPI `responses=` of a route taking Idempotency-Key: its success and its 409."""
    return {status: {"description": description}, 409: {"description": conflict}}


Answer = tuple[dict[str, Any], int]
#: What a route using `idempotent` returns (powertools documents the dict inside).
Answered = Response[dict[str, Any]]


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="Your unique key for this request (a UUID, for instance; 1 to 255 visible "
        "ASCII characters). A retry with the same key and body answers the first result again "
        "(for 24 h) and does nothing twice; the same key with another body is a 409.",
        examples=["5f0c9a4e-1c3b-4d8e-9a53-0b6f2f1e7c11"],
    ),
]


def idempotent(
    router: Router,
    community_id: str,
    key: str | None,
    run: Callable[[], Answer],
    *,
    redact: Callable[[dict[str, Any]], dict[str, Any]] = lambda answer: answer,
) -> Answered:
    """Run `run` once per Idempotency-Key `key` (when the request has one) and answer its
    result; `redact` gives the stored form of an answer (without secrets shown once)."""
    if key is None:
        return _answer(*run())
    if not _KEY.match(key):
        raise InvalidParam(
            f"{HEADER} must be 1 to 255 visible ASCII characters (a UUID, for instance).",
            field=HEADER,
        )
    event = router.current_event
    request = {
        "community_id": community_id,
        "operation": f"{event.http_method} {event.path}",
        "key": key,
        "body": event.json_body if event.body else None,
    }

    # Only requests with the header need powertools idempotency (and its DynamoDB store).
    from hookline.api import once

    result = once.run_once(router, request, run, redact)
    if isinstance(result, tuple):  # this request ran
        return _answer(*result)
    # A replay: the stored form (once._Stored.to_dict) of the first request's answer.
    return _answer(result["body"], int(result["status"]), replayed=True)


def _answer(body: dict[str, Any], status: int, *, replayed: bool = False) -> Answered:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )
