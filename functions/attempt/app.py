"""AttemptFunction: the RetryStateMachine's task. One retry attempt, the bookkeeping of a crashed
attempt, or giving up; the state machine's Choice states act on the decision returned."""

from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from hookline.domain import retry
from hookline.domain.delivery import DeliveryContext
from hookline.observability import correlated, logger, metrics, step_keys, tracer
from hookline.wiring import services


class StepInput(BaseModel):
    """The Payload statemachine/retry.asl.json sends (see its Comment for the contract)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    action: Literal["attempt", "record_crash", "give_up"]
    delivery_id: str = Field(min_length=1)
    community_id: str = Field(min_length=1)
    webhook_id: str = ""
    attempt: int = Field(ge=1)
    max_attempts: int | None = Field(default=None, ge=1)
    schedule: list[int] = Field(default_factory=list)
    error: Any = None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@correlated(step_keys)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepInput.model_validate(event)
    ctx = DeliveryContext.from_services(services())
    if step.action == "attempt":
        decision = retry.run_attempt(
            ctx,
            step.community_id,
            step.delivery_id,
            step.attempt,
            step.schedule,
            max_attempts=step.max_attempts,
        )
    elif step.action == "record_crash":
        decision = retry.record_crash(
            ctx,
            step.community_id,
            step.delivery_id,
            step.attempt,
            step.schedule,
            step.error,
            max_attempts=step.max_attempts,
        )
    else:
        retry.give_up(
            ctx,
            step.community_id,
            step.delivery_id,
            f"No attempts left after {step.attempt} attempts.",
        )
        decision = retry.Decision("failed", 0, step.attempt)
    return decision.to_dict()
