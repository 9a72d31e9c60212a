"""DeliveryQueue over SQS: the dispatcher's hand-over to DeliverFunction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from botocore.config import Config

from hookline.adapters import aws

#: SendMessageBatch takes at most ten messages.
_BATCH = 10


@lru_cache(maxsize=1)
def _client() -> Any:
    return aws.client("sqs", config=Config(retries={"mode": "standard"}))


class SqsDeliveryQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, messages: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[int]:
        if not self.queue_url:
            raise RuntimeError("DELIVERY_QUEUE_URL is not configured")
        failed: list[int] = []
        for start in range(0, len(messages), _BATCH):
            chunk = messages[start : start + _BATCH]
            entries = [
                {
                    "Id": str(start + i),
                    "MessageBody": json.dumps(m, separators=(",", ":")),
                    **({"DelaySeconds": delay_seconds} if delay_seconds else {}),
                }
                for i, m in enumerate(chunk)
            ]
            try:
                answer = _client().send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception:
                failed.extend(range(start, start + len(chunk)))
                continue
            failed.extend(int(entry["Id"]) for entry in answer.get("Failed", []))
        return failed
