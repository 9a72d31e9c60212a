"""Domain records. Stored as table items by hookline.domain.repositories."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WebhookStatus = Literal["active", "inactive"]
WebhookFormat = Literal["json", "slack", "discord"]
Scope = Literal["admin", "publish", "read"]
#: Deliveries per second by format when a webhook sets no rate_limit (Slack takes about one
#: message a second, Discord about 30 a minute); json webhooks are unlimited.
DEFAULT_RATE_LIMITS: dict[str, float] = {"slack": 1.0, "discord": 0.5}

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
    #: admin: everything of the community; publish: POST events only; read: GET only.
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["admin"]))
    created_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None


class PreviousSecret(Record):
    """A replaced secret that keeps signing until ``expires_at`` (a rotation's promise)."""

    secret: str
    expires_at: str


class Webhook(Record):
    id: str
    community_id: str
    name: str = ""
    url: str
    events: list[str]
    status: WebhookStatus = "active"
    secret: str | None = None
    #: Secrets still in a rotation's overlap, oldest first (hookline.domain.rotation).
    previous_secrets: list[PreviousSecret] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    retry_count: int = 3
    description: str = ""
    format: WebhookFormat = "json"
    #: An EventBridge pattern over the delivered payload (hookline.domain.filters); None: all.
    filter: dict[str, Any] | None = None
    #: Deliveries per second (hookline.domain.pacing); None: unlimited. A record stored without
    #: one gets its format's default.
    rate_limit: float | None = None
    #: Until when a receiver's Retry-After holds this webhook's sends (ISO time).
    throttled_until: str | None = None
    last_triggered_at: str | None = None
    last_error: str | None = None
    disabled_reason: str | None = None
    failing_since: str | None = None
    permanent_failures: int = 0
    created_at: str
    updated_at: str

    @model_validator(mode="before")
    @classmethod
    def _default_rate_limit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rate_limit" not in data:
            return {**data, "rate_limit": DEFAULT_RATE_LIMITS.get(data.get("format") or "json")}
        return data

    @model_validator(mode="before")
    @classmethod
    def _fold_single_previous_secret(cls, data: Any) -> Any:
        # Items written before rotations could overlap held one previous_secret.
        if (
            isinstance(data, dict)
            and data.get("previous_secret")
            and not data.get("previous_secrets")
        ):
            expires_at = data.get("previous_secret_expires_at")
            if expires_at:
                folded = {"secret": data["previous_secret"], "expires_at": expires_at}
                data = {**data, "previous_secrets": [folded]}
        return data

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
    #: The attempt budget of its current retry cycle (the number of its last attempt).
    max_attempts: int | None = None
    #: The retry group (the retry workflow's execution name) whose workflow retries it.
    retry_group: str | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    reason: str | None = None
    operational: bool = False
    #: Queued by a replay (POST .../replay) rather than by publishing.
    replayed: bool = False
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
    #: How long the delivery waited for its webhook's rate limit before this attempt.
    rate_limit_wait_ms: int = 0
    created_at: str
