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
class Between:
    """A `Query.where` value that matches `low <= attribute <= high`."""

    low: Any
    high: Any


@dataclass(frozen=True)
class Query:
    """A key-condition query on a table or one of its indexes.

    `partition` is the hash-key value; `prefix`, `after`/`before` bound the range key
    (prefix match, exclusive bounds). Results come newest-first when `descending` is set.
    `where` filters on other attributes: a value must be equal, `None` matches a missing or null
    attribute, and a `Between` matches an inclusive range.
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
    the queried partition raises hookline.errors.InvalidCursor. Reads of the table are strongly
    consistent unless a `get` says `consistent=False` (half the read units; may miss a write
    made within about a second).
    """

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None: ...

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
    def rate_limiter(self) -> RateLimiter:
        """The pace store that belongs beside these tables."""
        ...


class RetryScheduler(Protocol):
    """Starts the retry workflow of a retry group."""

    def schedule(self, *, name: str, document: Mapping[str, Any]) -> None:
        """Start execution `name` with `document` as its input. An execution of that name that
        exists already is joined (no error): every member of a group starts it. Raises on
        failure."""
        ...


class DeliveryQueue(Protocol):
    """Hands deliveries from the dispatcher to the delivery consumer (SQS in AWS)."""

    def send(self, messages: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[int]:
        """Queue JSON-able messages, delivered after ``delay_seconds`` (at most 900); returns the
        indexes of those that could not be queued."""
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


@dataclass(frozen=True)
class Slot:
    """A send slot (epoch ms): ``taken`` when it was claimed, else the next free one."""

    at_ms: int
    taken: bool = True


class RateLimiter(Protocol):
    """Spaces the sends of each key (a webhook) with state every process shares.

    Times are epoch milliseconds. A claimed slot is a promise: whoever claimed it sends at it,
    so callers claim only when they are about to send.
    """

    def reserve(self, key: str, interval_ms: int, *, now_ms: int, horizon_ms: int) -> Slot:
        """Claim the key's next send slot: ``interval_ms`` after the slot claimed before it, not
        before a hold, never before ``now_ms``. A slot at or beyond ``now_ms + horizon_ms`` is
        not claimed: the answer is then the next free slot, with ``taken`` False."""
        ...

    def hold(self, key: str, until_ms: int) -> None:
        """No slot for ``key`` before ``until_ms`` (a receiver's Retry-After); never shortens."""
        ...


class Mailer(Protocol):
    def send(self, *, to: str, subject: str, text: str) -> None: ...
