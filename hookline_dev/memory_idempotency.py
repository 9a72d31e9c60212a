"""powertools idempotency records in memory, for in-memory tables (unit tests). Its own module:
hookline_dev.memory is imported by every function, this only by tests."""

from __future__ import annotations

import copy
import threading
import time

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)


class MemoryIdempotencyStore(BasePersistenceLayer):
    """powertools' idempotency records in memory, with the DynamoDB layer's put condition: a
    record may be replaced only once it expired, or while its in-progress lock timed out."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._lock:
            record = self._records.get(idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return copy.copy(record)

    def _put_record(self, data_record: DataRecord) -> None:
        now = time.time()
        with self._lock:
            old = self._records.get(data_record.idempotency_key)
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
                raise IdempotencyItemAlreadyExistsError(old_data_record=copy.copy(old))
            self._records[data_record.idempotency_key] = copy.copy(data_record)

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records[data_record.idempotency_key] = copy.copy(data_record)

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records.pop(data_record.idempotency_key, None)
