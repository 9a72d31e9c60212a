"""Domain records. Stored as table items by hookline.domain.repositories."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WebhookStatus = Literal["active", "inactive"]
WebhookFormat = Literal["json", "slack", "discord"]
DeliveryState = Literal["pending", "delivered", "retrying", "failed", "cancelled"]


class Record(BaseModel):
    # Validators are built on first use, not at import: a handler's cold start builds only the
    # records its first request touches.
    model_config = ConfigDict(extra="ignore", defer_build=True)


class Community(Record):
    id: str
    name: str
    site_url: str
    created_at: str
    updated_at: str


class ApiKey(Record):
    id: str
    community_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None


class Webhook(Record):
    id: str
    community_id: str
    name: str = ""
    url: str
    events: list[str]
    status: WebhookStatus = "active"
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    retry_count: int = 3
    description: str = ""
    format: WebhookFormat = "json"
    last_triggered_at: str | None = None
    last_error: str | None = None
    disabled_reason: str | None = None
    failing_since: str | None = None
    permanent_failures: int = 0
    created_at: str
    updated_at: str

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class Event(Record):
    id: str
    community_id: str
    event: str
    data: dict[str, Any]
    actor: dict[str, Any] | None = None
    site_url: str = ""
    timestamp: str
    #: Set for operational events about a delivery, so failures of those never emit more.
    operational: bool = False


class Delivery(Record):
    id: str
    community_id: str
    webhook_id: str
    event_id: str
    event: str
    state: DeliveryState = "pending"
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    reason: str | None = None
    operational: bool = False
    created_at: str
    updated_at: str


class Attempt(Record):
    id: str
    delivery_id: str
    community_id: str
    webhook_id: str
    event_id: str
    event: str
    attempt: int
    status_code: int | None = None
    response_time_ms: int = 0
    response_body: str = ""
    error: str | None = None
    success: bool
    created_at: str
