"""A powertools BatchProcessor that handles a whole batch in one call, so the records' work can
run concurrently, while each record still succeeds or fails on its own (partial responses)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

T = TypeVar("T")


class NotProcessed(Exception):
    """The record's work did not finish; the event source hands the record over again."""


class WholeBatchProcessor(BatchProcessor, Generic[T]):
    """The record handler only parses (returning None skips a record). ``run`` gets every parsed
    item at once and answers with the indexes (into its argument) of the items that failed."""

    def __init__(
        self,
        event_type: EventType,
        record_type: Callable[[dict[str, Any]], Any],
        run: Callable[[list[T]], set[int]],
    ) -> None:
        super().__init__(event_type=event_type)
        self.record_type = record_type
        self.run = run

    def process(self) -> list[tuple[Any, ...]]:
        parsed: list[tuple[Any, T | None, Any]] = []
        for raw in self.records:
            record = self.record_type(raw)
            try:
                parsed.append((record, self.handler(record=record), None))
            except Exception:
                parsed.append((record, None, sys.exc_info()))
        items = [item for _, item, _ in parsed if item is not None]
        failed = self.run(items) if items else set()
        results: list[tuple[Any, ...]] = []
        position = 0
        for record, item, error in parsed:
            if error is not None:
                results.append(self.failure_handler(record, error))
                continue
            if item is None:
                results.append(self.success_handler(record, None))
                continue
            if position in failed:
                problem = NotProcessed("the record's work did not finish")
                results.append(self.failure_handler(record, (NotProcessed, problem, None)))
            else:
                results.append(self.success_handler(record, item))
            position += 1
        return results
