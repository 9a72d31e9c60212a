"""powertools idempotency records in a Table (in memory by default), for in-memory tables (unit
tests) and the local stack (its journaled idempotency table). Its own module: hookline_dev.memory
is imported by every function, this only by tests and the local stack."""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from hookline.ports import Item, Table
from hookline_dev.memory import MemoryTable

#: The range key of a record's item (the IdempotencyTable has a hash key only).
_SK = "record"


def _item(record: DataRecord) -> Item:
    item: Item = {"pk": record.idempotency_key, "sk": _SK, "status": record.status}
    optional: dict[str, Any] = {
        # The template's TTL attribute of the IdempotencyTable, as powertools names it.
        "expiration": record.expiry_timestamp,
        "in_progress_expiration": record.in_progress_expiry_timestamp,
        "data": record.response_data or None,
        "validation": record.payload_hash or None,
    }
    item.update({k: v for k, v in optional.items() if v is not None})
    return item


def _record(item: Item) -> DataRecord:
    return DataRecord(
        idempotency_key=item["pk"],
        status=item.get("status", ""),
        expiry_timestamp=item.get("expiration"),
        in_progress_expiry_timestamp=item.get("in_progress_expiration"),
        response_data=item.get("data", ""),
        payload_hash=item.get("validation", ""),
    )


class MemoryIdempotencyStore(BasePersistenceLayer):
    """powertools' idempotency records in `table`, with the DynamoDB layer's put condition: a
    record may be replaced only once it expired, or while its in-progress lock timed out."""

    def __init__(self, table: Table | None = None) -> None:
        super().__init__()
        self._table: Table = table if table is not None else MemoryTable("idempotency")
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        item = self._table.get(idempotency_key, _SK)
        if item is None:
            raise IdempotencyItemNotFoundError
        return _record(item)

    def _put_record(self, data_record: DataRecord) -> None:
        now = time.time()
        with self._lock:
            found = self._table.get(data_record.idempotency_key, _SK)
            old = _record(found) if found is not None else None
            replaceable = (
                old is None
                or (old.expiry_timestamp or 0) < now
                or (
                    old.status == STATUS_CONSTANTS["INPROGRESS"]
                    and old.in_progress_expiry_timestamp is not None
                    and old.in_progress_expiry_timestamp < now * 1000
                )
            )
            if not replaceable:
                assert old is not None
                self._validate_payload(data_payload=data_record, stored_data_record=old)
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._table.put(_item(data_record))

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._table.put(_item(data_record))

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._table.delete(data_record.idempotency_key, _SK)
