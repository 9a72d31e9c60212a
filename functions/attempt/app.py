"""AttemptFunction: the RetryStateMachine's task. One round of a retry group, or the bookkeeping
of a round that crashed; the state machine's Choice acts on the document returned."""

from hookline import coldstart

with coldstart.imports():
    from typing import Any, Literal

    from aws_lambda_powertools.utilities.typing import LambdaContext
    from pydantic import BaseModel, ConfigDict, Field

    from hookline.domain import retry_workflow
    from hookline.domain.delivery import DeliveryContext
    from hookline.observability import correlated, logger, metrics, step_keys, tracer
    from hookline.wiring import services


class StepInput(BaseModel):
    """The Payload statemachine/retry.asl.json sends (see its Comment for the contract)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    action: Literal["attempt", "record_crash"]
    community_id: str = Field(min_length=1)
    webhook_id: str = Field(min_length=1)
    group: str = Field(min_length=1)
    since: str = Field(min_length=1)
    until: str = Field(min_length=1)
    attempt: int = Field(ge=0)
    wait_seconds: int = Field(default=0, ge=0)
    error: Any = None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@correlated(step_keys)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepInput.model_validate(event)
    ctx = DeliveryContext.from_services(services())
    document = step.model_dump(exclude={"action", "error"})
    if step.action == "attempt":
        return retry_workflow.run_round(ctx, document)
    return retry_workflow.record_crash(ctx, document, step.error)
