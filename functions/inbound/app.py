"""InboundFunction: ``POST /v1/hooks/{token}``, the public endpoint of incoming webhooks.

No authorizer: the token in the path is the credential. The function never logs the token, the
request body or a password; its one log line per call names the webhook, outcome and reason.
"""

from hookline import coldstart

with coldstart.imports():
    import base64
    import binascii
    import json
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hookline.domain import incoming_processor
    from hookline.observability import logger, metrics, tracer
    from hookline.wiring import services


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _raw_body(event: dict[str, Any]) -> bytes | None:
    """The request body as received; API Gateway base64-encodes binary media types (multipart)."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _observe(result: incoming_processor.InboundResult, source_ip: str) -> None:
    logger.info(
        "inbound call",
        extra={
            "incoming_webhook_id": result.incoming_webhook_id,
            "community_id": result.community_id,
            "outcome": result.outcome,
            "reason": result.reason,
            "status_code": result.status,
            "source_ip": source_ip,
            "user_id": result.user_id,
        },
    )
    if result.success:
        metrics.add_metric(name="InboundProcessed", unit=MetricUnit.Count, value=1)
    else:
        # Counted without a reason dimension (the dashboard and alarms read the total); the
        # saved Logs Insights query breaks rejections down by reason.
        metrics.add_metric(name="InboundRejected", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    source_ip = str((request_context.get("identity") or {}).get("sourceIp") or "")
    token = str((event.get("pathParameters") or {}).get("token") or "")
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    raw_body = _raw_body(event)
    if raw_body is None:
        result = incoming_processor.InboundResult(
            status=400,
            message="Request body is not valid base64.",
            outcome="rejected",
            reason="invalid_body",
        )
    else:
        try:
            result = incoming_processor.process(
                incoming_processor.InboundContext.from_services(services()),
                token,
                None,
                source_ip,
                raw_body,
                headers,
            )
        except Exception:
            logger.exception("inbound call failed", extra={"source_ip": source_ip})
            result = incoming_processor.InboundResult(
                status=500, message="Internal error.", outcome="error", reason="internal_error"
            )
    _observe(result, source_ip)
    return _response(result.status, result.body())
