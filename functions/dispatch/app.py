"""DispatchFunction: the events table's stream (INSERT records) -> the first attempt of every
delivery, answering with a partial batch response that names the records to hand over again."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from hookline.adapters.dynamodb import to_python
from hookline.domain.delivery import DeliveryContext
from hookline.domain.dispatch import dispatch_events
from hookline.domain.models import Event
from hookline.domain.repositories import event_from_item
from hookline.observability import logger, metrics, tracer
from hookline.wiring import services


class NotDispatched(Exception):
    """A delivery of the record's event did not finish; the stream hands the record over again."""


class BatchDispatchProcessor(BatchProcessor):
    """A BatchProcessor whose record handler only parses. The parsed batch is then dispatched in
    one call, so attempts across the whole batch run concurrently, and each record succeeds or
    fails with its event."""

    def __init__(self, dispatch: Callable[[list[Event]], set[str]]) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams)
        self.dispatch = dispatch

    def process(self) -> list[tuple[Any, ...]]:
        parsed: list[tuple[DynamoDBRecord, Event | None, Any]] = []
        for raw in self.records:
            record = DynamoDBRecord(raw)
            try:
                parsed.append((record, self.handler(record=record), None))
            except Exception:
                parsed.append((record, None, sys.exc_info()))
        events = [event for _, event, _ in parsed if event is not None]
        failed = self.dispatch(events) if events else set()
        results: list[tuple[Any, ...]] = []
        for record, event, error in parsed:
            if error is not None:
                results.append(self.failure_handler(record, error))
            elif event is not None and event.id in failed:
                problem = NotDispatched(f"event {event.id} was not fully dispatched")
                results.append(self.failure_handler(record, (NotDispatched, problem, None)))
            else:
                results.append(self.success_handler(record, event))
        return results


def event_of(record: DynamoDBRecord) -> Event | None:
    """The event a stream record inserted (powertools has deserialised the image already)."""
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return None  # the event source mapping passes INSERTs only; nothing else is a new event
    return event_from_item(to_python(record.dynamodb.new_image))


def _dispatch(events: list[Event]) -> set[str]:
    report = dispatch_events(DeliveryContext.from_services(services()), events)
    logger.info(
        "batch dispatched",
        extra={
            "events": report.events,
            "attempted": report.attempted,
            "delivered": report.delivered,
            "failed": report.failed,
            "skipped": report.skipped,
            "unfinished_events": len(report.failed_event_ids),
        },
    )
    return report.failed_event_ids


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=event_of,
        processor=BatchDispatchProcessor(_dispatch),
        context=context,
    )
