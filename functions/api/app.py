"""ApiFunction: the management API (communities, keys, webhooks, events, logs, directory)."""

from hookline import coldstart

with coldstart.imports():
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hookline.api.app import handle
    from hookline.observability import api_keys, correlated, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
@correlated(api_keys)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
