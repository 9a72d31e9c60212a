"""Incoming webhooks' records in the CommunitiesTable: the webhook ``C#<cid>``/``IN#<iid>``, its
token lookup ``TOKEN#<sha256(token)>``/``TOKEN`` and its activity log ``INLOG#<iid>``/
``<created_at>#<id>`` (expiring). The token itself is never stored."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookline.domain.models import Record
from hookline.domain.repositories import record_fields
from hookline.errors import (
    ConditionFailed,
    Conflict,
    NotFound,
)
from hookline.ports import Query, Table

if TYPE_CHECKING:
    pass

IncomingStatus = Literal["active", "inactive"]
Outcome = Literal["processed", "rejected", "error"]
#: A webhook's body cap unless its settings give one.
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class IncomingWebhook(Record):
    id: str
    community_id: str
    name: str
    add_spaces: list[str] = Field(default_factory=list)
    remove_spaces: list[str] = Field(default_factory=list)
    add_courses: list[str] = Field(default_factory=list)
    remove_courses: list[str] = Field(default_factory=list)
    send_welcome_email: bool = False
    status: IncomingStatus = "active"
    token_hash: str
    allowed_ips: list[str] = Field(default_factory=list)
    signing_secret: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    token_rotated_at: str | None = None
    created_at: str
    updated_at: str


class IncomingLog(Record):
    """One call of an incoming webhook, as its activity log shows it (never the password)."""

    id: str
    incoming_webhook_id: str
    community_id: str
    created_at: str
    source_ip: str
    outcome: Outcome
    status_code: int
    reason: str | None = None
    user_id: str | None = None
    actions: list[dict[str, Any]] = Field(default_factory=list)
    message: str
    error: str | None = None


def _token_key(token_hash: str) -> tuple[str, str]:
    return f"TOKEN#{token_hash}", "TOKEN"


class IncomingRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def create(self, hook: IncomingWebhook) -> None:
        pk, sk = _token_key(hook.token_hash)
        self.table.put(
            {
                "pk": pk,
                "sk": sk,
                "community_id": hook.community_id,
                "incoming_webhook_id": hook.id,
            },
            if_absent=True,
        )
        self.table.put(
            {"pk": f"C#{hook.community_id}", "sk": f"IN#{hook.id}", **hook.model_dump()},
            if_absent=True,
        )

    def find(self, community_id: str, incoming_id: str) -> IncomingWebhook | None:
        item = self.table.get(f"C#{community_id}", f"IN#{incoming_id}")
        return IncomingWebhook.model_validate(record_fields(item)) if item else None

    def get(self, community_id: str, incoming_id: str) -> IncomingWebhook:
        hook = self.find(community_id, incoming_id)
        if hook is None:
            raise NotFound("Incoming webhook not found.")
        return hook

    def by_token_hash(self, token_hash: str) -> IncomingWebhook | None:
        item = self.table.get(*_token_key(token_hash))
        if item is None:
            return None
        hook = self.find(str(item["community_id"]), str(item["incoming_webhook_id"]))
        # The record is the authority: a lookup that outlived a rotation opens nothing.
        if hook is None or not hmac.compare_digest(hook.token_hash, token_hash):
            return None
        return hook

    def page(
        self, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[IncomingWebhook], str | None]:
        result = self.table.query(
            Query(f"C#{community_id}", prefix="IN#", limit=limit, cursor=cursor)
        )
        hooks = [IncomingWebhook.model_validate(record_fields(i)) for i in result.items]
        return hooks, result.cursor

    def update(
        self,
        community_id: str,
        incoming_id: str,
        changes: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        expect: dict[str, Any] | None = None,
    ) -> IncomingWebhook:
        item = self.table.update(
            f"C#{community_id}", f"IN#{incoming_id}", set=changes, remove=remove, expect=expect
        )
        return IncomingWebhook.model_validate(record_fields(item))

    def rotate(self, hook: IncomingWebhook, new_hash: str, now: str) -> IncomingWebhook:
        """Point the webhook at a new token hash; the old token stops working at once."""
        new_pk, new_sk = _token_key(new_hash)
        self.table.put(
            {
                "pk": new_pk,
                "sk": new_sk,
                "community_id": hook.community_id,
                "incoming_webhook_id": hook.id,
            },
            if_absent=True,
        )
        try:
            updated = self.update(
                hook.community_id,
                hook.id,
                {"token_hash": new_hash, "token_rotated_at": now, "updated_at": now},
                expect={"token_hash": hook.token_hash},
            )
        except ConditionFailed as exc:
            self.table.delete(new_pk, new_sk)
            raise Conflict("The incoming webhook changed meanwhile; try again.") from exc
        self.table.delete(*_token_key(hook.token_hash))
        return updated

    def delete(self, hook: IncomingWebhook) -> None:
        self.table.delete(f"C#{hook.community_id}", f"IN#{hook.id}")
        self.table.delete(*_token_key(hook.token_hash))

    def add_log(self, entry: IncomingLog, *, expires_at: int) -> None:
        self.table.put(
            {
                "pk": f"INLOG#{entry.incoming_webhook_id}",
                "sk": f"{entry.created_at}#{entry.id}",
                "expires_at": expires_at,
                **entry.model_dump(),
            }
        )

    def logs(
        self, incoming_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[IncomingLog], str | None]:
        """The activity log, newest first."""
        page = self.table.query(
            Query(f"INLOG#{incoming_id}", descending=True, limit=limit, cursor=cursor)
        )
        return [IncomingLog.model_validate(record_fields(i)) for i in page.items], page.cursor
