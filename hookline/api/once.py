"""Running a request once per Idempotency-Key, through powertools idempotency. Imported by
hookline.api.idempotency on the first request that carries the header, so requests without one
(and the cold start) never load the idempotency utility and its DynamoDB store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.base import (
    BaseIdempotencySerializer,
)

from hookline.api.idempotency import HEADER, KEEP_SECONDS, Answer
from hookline.errors import Conflict
from hookline.wiring import idempotency_store


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


def run_once(
    router: Router,
    request: dict[str, Any],
    run: Callable[[], Answer],
    redact: Callable[[dict[str, Any]], dict[str, Any]],
) -> Any:
    """`run()` the first time `request` (community, operation, key, body) is seen: its answer;
    again, the stored form of the first answer (a dict, see _Stored). Another body with the key,
    or the key while its first request still runs, is a 409 naming the header."""

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
        return once(request=request)
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
