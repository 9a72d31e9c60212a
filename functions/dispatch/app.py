"""DispatchFunction: the events table's stream (INSERT records) -> one delivery order per
subscribed webhook on the delivery queue, answering with a partial batch response that names the
records to hand over again."""

from __future__ import annotations

from hookline import coldstart

with coldstart.imports():
    from typing import Any

    from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
        DynamoDBRecordEventName,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hookline.adapters.batch import WholeBatchProcessor
    from hookline.adapters.dynamodb import to_python
    from hookline.domain.delivery import DeliveryContext
    from hookline.domain.dispatch import queue_events
    from hookline.domain.models import Event
    from hookline.domain.repositories import event_from_item
    from hookline.observability import logger, metrics, tracer
    from hookline.wiring import services


def event_of(record: DynamoDBRecord) -> Event | None:
    """The event a stream record inserted (powertools has deserialised the image already)."""
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return None  # the event source mapping passes INSERTs only; nothing else is a new event
    return event_from_item(to_python(record.dynamodb.new_image))


def _dispatch(events: list[Event]) -> set[int]:
    report = queue_events(DeliveryContext.from_services(services()), events)
    logger.info(
        "batch dispatched",
        extra={
            "events": report.events,
            "queued": report.queued,
            "unfinished_events": len(report.failed_event_ids),
        },
    )
    return {i for i, event in enumerate(events) if event.id in report.failed_event_ids}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=event_of,
        processor=WholeBatchProcessor(EventType.DynamoDBStreams, DynamoDBRecord, _dispatch),
        context=context,
    )
