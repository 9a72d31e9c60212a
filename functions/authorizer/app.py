"""AuthorizerFunction: API Gateway REQUEST authorizer. Authenticates the API key only; the API
checks which community the key may act on. Its answer is cached per Authorization header, so the
policy covers the whole API and the context carries the key's identity."""

from hookline import coldstart

with coldstart.imports():
    from typing import Any

    from aws_lambda_powertools.utilities.data_classes import event_source
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
        APIGatewayAuthorizerResponse,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hookline.adapters.operator_key import operator_key
    from hookline.domain import portal
    from hookline.domain.communities import authenticate, key_from_authorization
    from hookline.domain.repositories import CommunityRepository
    from hookline.errors import Unauthorized
    from hookline.observability import logger, metrics, tracer
    from hookline.wiring import services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(
    event: APIGatewayAuthorizerRequestEvent, context: LambdaContext
) -> dict[str, Any]:
    config = services()
    presented = key_from_authorization(
        event.headers.get("Authorization") or event.headers.get("authorization")
    )
    try:
        if portal.is_portal_token(presented):
            caller = portal.authenticate(
                portal.PortalSessionRepository(config.tables.communities), presented
            )
        else:
            caller = authenticate(
                CommunityRepository(config.tables.communities),
                presented,
                operator_key(config.settings),
            )
    except Unauthorized:
        logger.info("authorizer rejected a request", extra={"reason": "invalid_key"})
        raise Exception("Unauthorized") from None  # API Gateway's contract for a 401
    arn = event.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=caller.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"role": caller.role, "community_id": caller.community_id, "key_id": caller.key_id},
    )
    policy.allow_all_routes()
    return policy.asdict()
