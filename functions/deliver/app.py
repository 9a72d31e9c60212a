"""DeliverFunction: the delivery queue (SQS) -> the first attempt of each delivery order, all of
a batch at once, answering with a partial batch response that names the messages to hand over
again."""

from __future__ import annotations

from hookline import coldstart

with coldstart.imports():
    import json
    from typing import Any

    from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hookline.adapters.batch import WholeBatchProcessor
    from hookline.domain.delivery import DeliveryContext
    from hookline.domain.dispatch import DeliveryOrder, deliver_orders
    from hookline.observability import logger, metrics, tracer
    from hookline.wiring import services


def order_of(record: SQSRecord) -> DeliveryOrder:
    return DeliveryOrder.from_message(json.loads(record.body))


def _deliver(orders: list[DeliveryOrder]) -> set[int]:
    results = deliver_orders(DeliveryContext.from_services(services()), orders)
    unfinished = {i for i, result in enumerate(results) if isinstance(result, BaseException)}
    logger.info(
        "deliveries made",
        extra={
            "orders": len(orders),
            "delivered": sum(1 for r in results if r == "delivered"),
            "failed": sum(1 for r in results if r == "failed"),
            "deferred": sum(1 for r in results if r == "deferred"),
            "unfinished": len(unfinished),
        },
    )
    return unfinished


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=order_of,
        processor=WholeBatchProcessor(EventType.SQS, SQSRecord, _deliver),
        context=context,
    )
