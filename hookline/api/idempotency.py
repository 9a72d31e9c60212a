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
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.base import (
    BaseIdempotencySerializer,
)

from hookline.errors import Conflict, InvalidParam
from hookline.wiring import idempotency_store

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


class _Stored(BaseIdempotencySerializer):
    """Stores (body, status) as a dict, passed through `redact` first; reads it back as is."""

    def __init__(self, redact: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.redact = redact

    def to_dict(self, data: Any) -> dict[str, Any]:
        body, status = data
        return {"body": self.redact(body), "status": status}

    def from_dict(self, data: dict[str, Any]) -> Any:
        return data


def _config(router: Router) -> IdempotencyConfig:
    config = IdempotencyConfig(
        event_key_jmespath="[community_id, operation, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=KEEP_SECONDS,
    )
    context = getattr(router, "lambda_context", None)
    if context is not None:
        # The in-progress lock then ends with the invocation, so a crash does not hold the key.
        config.register_lambda_context(context)
    return config


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

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=idempotency_store(),
        config=_config(router),
        output_serializer=_Stored(redact),
        key_prefix="hookline-api",
    )
    def once(request: dict[str, Any]) -> Any:
        return run()

    try:
        result = once(request=request)
    except IdempotencyValidationError as exc:
        raise Conflict(
            f"This {HEADER} was already used with a different request body; "
            "use a new key for a new request.",
            field=HEADER,
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict(
            f"A request with this {HEADER} is still being processed; retry shortly.",
            field=HEADER,
        ) from exc
    if isinstance(result, tuple):  # this request ran
        return _answer(*result)
    # A replay: the stored form (_Stored.to_dict) of the first request's answer.
    return _answer(result["body"], int(result["status"]), replayed=True)


def _answer(body: dict[str, Any], status: int, *, replayed: bool = False) -> Answered:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )
