"""Every setting the functions read from their environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _schedule(value: str) -> tuple[int, ...]:
    delays = tuple(int(part) for part in value.split(",") if part.strip())
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"RETRY_SCHEDULE must list non-negative seconds, got {value!r}")
    return delays


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    communities_table: str = "hookline-communities"
    webhooks_table: str = "hookline-webhooks"
    events_table: str = "hookline-events"
    deliveries_table: str = "hookline-deliveries"
    directory_table: str = "hookline-directory"
    idempotency_table: str = "hookline-idempotency"
    retry_state_machine_arn: str = ""
    delivery_queue_url: str = ""
    retry_schedule: tuple[int, ...] = (300, 1800, 7200)
    #: Deliveries whose first attempt fails at one webhook within this many seconds share one
    #: retry workflow (a retry group; hookline.domain.policy.window_group).
    retry_group_window_seconds: int = 60
    delivery_timeout_seconds: float = 10.0
    delivery_retention_days: int = 30
    event_retention_days: int = 7
    operator_key_parameter: str = ""
    operator_key: str = field(default="", repr=False)
    allow_private_targets: bool = False
    #: A float so the local stack can scale it down (hookline local --auto-disable-scale).
    auto_disable_after_hours: float = 120
    auto_disable_min_failures: int = 10
    mail_sender: str = "no-reply@hookline.local"
    mail_outbox_dir: str = ""
    dispatch_concurrency: int = 32
    #: The local stack's --time-scale: its retry timer runs every wait this much faster, so a
    #: delivery's next_attempt_at is scaled too. Always 1 when deployed.
    retry_time_scale: float = 1.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            stage=env("HOOKLINE_STAGE", "dev"),
            communities_table=env("COMMUNITIES_TABLE", cls.communities_table),
            webhooks_table=env("WEBHOOKS_TABLE", cls.webhooks_table),
            events_table=env("EVENTS_TABLE", cls.events_table),
            deliveries_table=env("DELIVERIES_TABLE", cls.deliveries_table),
            directory_table=env("DIRECTORY_TABLE", cls.directory_table),
            idempotency_table=env("IDEMPOTENCY_TABLE", cls.idempotency_table),
            retry_state_machine_arn=env("RETRY_STATE_MACHINE_ARN", ""),
            delivery_queue_url=env("DELIVERY_QUEUE_URL", ""),
            retry_schedule=_schedule(env("RETRY_SCHEDULE", "300,1800,7200")),
            retry_group_window_seconds=_int("RETRY_GROUP_WINDOW_SECONDS", 60),
            delivery_timeout_seconds=float(env("DELIVERY_TIMEOUT_SECONDS", "10")),
            delivery_retention_days=_int("DELIVERY_RETENTION_DAYS", 30),
            event_retention_days=_int("EVENT_RETENTION_DAYS", 7),
            operator_key_parameter=env("OPERATOR_KEY_PARAMETER", ""),
            operator_key=env("HOOKLINE_OPERATOR_KEY", ""),
            allow_private_targets=_bool("ALLOW_PRIVATE_TARGETS"),
            auto_disable_after_hours=float(env("AUTO_DISABLE_AFTER_HOURS") or 120),
            auto_disable_min_failures=_int("AUTO_DISABLE_MIN_FAILURES", 10),
            mail_sender=env("MAIL_SENDER", cls.mail_sender),
            mail_outbox_dir=env("MAIL_OUTBOX_DIR", ""),
            dispatch_concurrency=_int("DISPATCH_CONCURRENCY", 32),
            retry_time_scale=float(env("RETRY_TIME_SCALE") or 1),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once (settings.cache_clear() re-reads the environment)."""
    return Settings.from_env()
