"""Page/cursor pagination shared by every list route.

Cursors leave the API signed (hookline.adapters.cursor.sign) with a key derived from the operator
key, which both Lambda (SSM) and the local stack (environment) configure; a cursor Hookline did
not issue is a 400 on `cursor` before it reaches storage. Page numbers stop at MAX_PAGE: deeper
pages would re-read every item before them, so the error points to the cursor instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import AfterValidator

from hookline import clock
from hookline.adapters import cursor as cursors
from hookline.adapters.operator_key import operator_key
from hookline.errors import InvalidParam
from hookline.wiring import services

T = TypeVar("T")

MAX_PAGE = 20

PageParam = Annotated[
    int,
    Query(
        ge=1,
        description=f"Page number, from 1, at most {MAX_PAGE}; beyond it follow next_cursor.",
        json_schema_extra={"maximum": MAX_PAGE},
    ),
]
PerPageParam = Annotated[int, Query(ge=1, le=50, description="Items per page (max 50).")]
CursorParam = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page.")
]


def _iso_time(value: str | None) -> str | None:
    """An ISO-8601 time in the stored form (UTC, milliseconds, Z), so it compares as text."""
    if value is None:
        return None
    try:
        return clock.iso(clock.parse_iso(value))
    except ValueError as exc:
        raise ValueError("must be an ISO-8601 time, e.g. 2026-01-02T03:04:05Z") from exc


SinceParam = Annotated[
    str | None,
    Query(max_length=64, description="Only items created at or after this ISO-8601 time."),
    AfterValidator(_iso_time),
]
UntilParam = Annotated[
    str | None,
    Query(max_length=64, description="Only items created before this ISO-8601 time."),
    AfterValidator(_iso_time),
]


def time_range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """Exclusive bounds on a `<created_at>#<id>` range key for ?since= (inclusive) and ?until=
    (exclusive)."""
    if since is not None and until is not None and since >= until:
        raise InvalidParam("since must be earlier than until.", field="until")
    return since, until


Fetch = Callable[[int, str | None], tuple[list[T], str | None]]


def _key() -> bytes:
    return cursors.signing_key(operator_key(services().settings))


def paginate(
    fetch: Fetch[T], *, page: int, per_page: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of a listing. A cursor wins over a page number (page N skips (N-1)*per_page)."""
    if cursor:
        return fetch(per_page, cursors.verify(cursor, _key()))
    if page > MAX_PAGE:
        raise InvalidParam(
            f"page is at most {MAX_PAGE}; to read further, follow next_cursor "
            "from the last page (?cursor=...).",
            field="page",
        )
    position: str | None = None
    to_skip = (page - 1) * per_page
    while to_skip > 0:
        skipped, position = fetch(min(to_skip, 100), position)
        to_skip -= len(skipped)
        if position is None:
            return [], None
    return fetch(per_page, position)


def sign_cursor(cursor: str | None) -> str | None:
    """The next_cursor to hand out for a storage cursor (None at the end of a list)."""
    return cursors.sign(cursor, _key()) if cursor else None


def listing(
    items: list[dict[str, Any]], *, page: int, per_page: int, cursor: str | None
) -> dict[str, Any]:
    """A page as the API answers it; `cursor` is the storage cursor, signed here."""
    return {"data": items, "page": page, "per_page": per_page, "next_cursor": sign_cursor(cursor)}


def page_listing(
    fetch: Fetch[T],
    view: Callable[[T], dict[str, Any]],
    *,
    page: int,
    per_page: int,
    cursor: str | None,
) -> dict[str, Any]:
    """What a list route answers: one page fetched (``paginate``), each item shown by ``view``."""
    items, next_cursor = paginate(fetch, page=page, per_page=per_page, cursor=cursor)
    return listing([view(item) for item in items], page=page, per_page=per_page, cursor=next_cursor)
