"""The small interfaces the domain talks to. AWS implementations live in hookline.adapters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hookline.domain.attempts import AttemptOutcome

Item = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of a query: the items and an opaque cursor for the next page (None at the end)."""

    items: list[Item]
    cursor: str | None = None


@dataclass(frozen=True)
class Query:
    """A key-condition query on a table or one of its indexes.

    `partition` is the hash-key value; `prefix`, `after`/`before` bound the range key
    (prefix match, exclusive bounds). Results come newest-first when `descending` is set.
    """

    partition: str
    index: str | None = None
    prefix: str | None = None
    after: str | None = None
    before: str | None = None
    descending: bool = False
    limit: int | None = None
    cursor: str | None = None
    where: Mapping[str, Any] = field(default_factory=dict)


class Table(Protocol):
    """A key-value table with a string hash key `pk` and range key `sk` (DynamoDB-shaped).

    Conditional writes raise hookline.errors.ConditionFailed. A cursor that does not belong to
    the queried partition raises hookline.errors.InvalidCursor.
    """

    def get(self, pk: str, sk: str) -> Item | None: ...

    def put(self, item: Item, *, if_absent: bool = False) -> None: ...

    def update(
        self,
        pk: str,
        sk: str,
        *,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        add: Mapping[str, int] | None = None,
        if_exists: bool = True,
        expect: Mapping[str, Any] | None = None,
    ) -> Item: ...

    def delete(self, pk: str, sk: str, *, expect: Mapping[str, Any] | None = None) -> None: ...

    def query(self, query: Query) -> Page: ...

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]: ...


class Tables(Protocol):
    """The tables Hookline uses, by role."""

    @property
    def communities(self) -> Table: ...
    @property
    def webhooks(self) -> Table: ...
    @property
    def events(self) -> Table: ...
    @property
    def deliveries(self) -> Table: ...
    @property
    def directory(self) -> Table: ...


class RetryScheduler(Protocol):
    """Starts the retry workflow for a delivery whose attempt failed."""

    def schedule(
        self,
        *,
        delivery_id: str,
        community_id: str,
        webhook_id: str,
        attempt: int,
        waits: Sequence[int],
    ) -> None:
        """Start the retry cycle (idempotent per delivery and attempt). Raises on failure."""
        ...


class DeliveryQueue(Protocol):
    """Hands deliveries from the dispatcher to the delivery consumer (SQS in AWS)."""

    def send(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue JSON-able messages; returns the indexes of those that could not be queued."""
        ...


class Sender(Protocol):
    """Makes one HTTP delivery attempt (hookline.adapters.http_attempt.post). Never raises."""

    def __call__(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        allow_private: bool,
    ) -> AttemptOutcome: ...


class Mailer(Protocol):
    def send(self, *, to: str, subject: str, text: str) -> None: ...
