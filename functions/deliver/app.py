"""DeliverFunction: the delivery queue (SQS) -> the first attempt of each delivery order, all of
a batch at once, answering with a partial batch response that names the messages to hand over
again."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from hookline.adapters.batch import WholeBatchProcessor
from hookline.domain.delivery import DeliveryContext
from hookline.domain.dispatch import DeliveryOrder, Held, deliver_orders
from hookline.observability import logger, metrics, tracer
from hookline.wiring import services


def order_of(record: SQSRecord) -> tuple[DeliveryOrder, str]:
    return DeliveryOrder.from_message(json.loads(record.body)), record.receipt_handle


def _deliver(received: list[tuple[DeliveryOrder, str]]) -> set[int]:
    """Failed and held orders are named in the partial response; held ones come back only
    after their hold (their visibility timeout is set to it)."""
    wiring = services()
    results = deliver_orders(DeliveryContext.from_services(wiring), [o for o, _ in received])
    unfinished = {i for i, result in enumerate(results) if isinstance(result, BaseException)}
    held: dict[int, list[str]] = {}
    for (_, receipt), result in zip(received, results, strict=True):
        if isinstance(result, Held):
            held.setdefault(result.seconds, []).append(receipt)
    for seconds, receipts in held.items():
        wiring.queue.hold(receipts, seconds)
    logger.info(
        "deliveries made",
        extra={
            "orders": len(received),
            "delivered": sum(1 for r in results if r == "delivered"),
            "failed": sum(1 for r in results if r == "failed"),
            "held": sum(len(r) for r in held.values()),
            "unfinished": len(unfinished),
        },
    )
    return unfinished | {i for i, r in enumerate(results) if isinstance(r, Held)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=order_of,
        # A batch whose orders are all held is no error: it answers naming them all.
        processor=WholeBatchProcessor(
            EventType.SQS, SQSRecord, _deliver, raise_on_entire_batch_failure=False
        ),
        context=context,
    )
