"""RetryScheduler over the RetryStateMachine (Step Functions Standard)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from hookline.domain.policy import workflow_input


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("stepfunctions", config=Config(retries={"mode": "standard"}))


def execution_name(delivery_id: str, attempt: int) -> str:
    """Execution names are unique per state machine for 90 days, so starting the same retry cycle
    twice (a redelivered stream record) is refused with ExecutionAlreadyExists, which we treat as
    started. The attempt number keeps later cycles (resend, recover) distinct."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{delivery_id}-a{attempt}")[:80]


class StepFunctionsScheduler:
    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def schedule(
        self,
        *,
        delivery_id: str,
        community_id: str,
        webhook_id: str,
        attempt: int,
        waits: Sequence[int],
    ) -> None:
        if not self.state_machine_arn:
            raise RuntimeError("RETRY_STATE_MACHINE_ARN is not configured")
        payload = workflow_input(
            delivery_id=delivery_id,
            community_id=community_id,
            webhook_id=webhook_id,
            attempt=attempt,
            waits=waits,
        )
        client = _client()
        try:
            client.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=execution_name(delivery_id, attempt),
                input=json.dumps(payload),
            )
        except client.exceptions.ExecutionAlreadyExists:
            return
