"""RetryScheduler over the RetryStateMachine (Step Functions Standard)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from botocore.config import Config

from hookline.adapters import aws


@lru_cache(maxsize=1)
def _client() -> Any:
    return aws.client("stepfunctions", config=Config(retries={"mode": "standard"}))


class StepFunctionsScheduler:
    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def schedule(self, *, name: str, document: Mapping[str, Any]) -> None:
        """Execution names are unique per state machine for 90 days: a group's name comes from
        its webhook and window, so every member's start after the first is refused with
        ExecutionAlreadyExists, which means joined."""
        if not self.state_machine_arn:
            raise RuntimeError("RETRY_STATE_MACHINE_ARN is not configured")
        client = _client()
        try:
            client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(document)
            )
        except client.exceptions.ExecutionAlreadyExists:
            return
