"""Page/cursor pagination shared by every list route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler.openapi.params import Query

T = TypeVar("T")

PageParam = Annotated[int, Query(ge=1, le=10_000, description="Page number, from 1.")]
PerPageParam = Annotated[int, Query(ge=1, le=50, description="Items per page (max 50).")]
CursorParam = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page.")
]

Fetch = Callable[[int, str | None], tuple[list[T], str | None]]


def paginate(
    fetch: Fetch[T], *, page: int, per_page: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of a listing. A cursor wins over a page number (page N skips (N-1)*per_page)."""
    if cursor:
        return fetch(per_page, cursor)
    position: str | None = None
    to_skip = (page - 1) * per_page
    while to_skip > 0:
        skipped, position = fetch(min(to_skip, 100), position)
        to_skip -= len(skipped)
        if position is None:
            return [], None
    return fetch(per_page, position)


def listing(
    items: list[dict[str, Any]], *, page: int, per_page: int, cursor: str | None
) -> dict[str, Any]:
    return {"data": items, "page": page, "per_page": per_page, "next_cursor": cursor}
