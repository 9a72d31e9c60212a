"""Directory records <-> DirectoryTable items: users, spaces, courses and memberships.

Key layout (every key starts with the community, so nothing crosses communities):

    user                C#<cid>                      / U#<uid>
    email lookup        C#<cid>#EMAIL#<lower email>  / EMAIL     {user_id}
    login lookup        C#<cid>#LOGIN#<lower login>  / LOGIN     {user_id}
    space, course       C#<cid>                      / S#<sid>, CO#<coid>
    slug lookup         C#<cid>#SPACESLUG#<slug>     / SLUG      (COURSESLUG for courses)
    members of a group  C#<cid>#S#<sid>              / M#<uid>   (C#<cid>#CO#<coid> for courses)
    groups of a user    C#<cid>#U#<uid>              / S#<sid>, CO#<coid>

Uniqueness (email, login, slug) is enforced by writing the lookup item only if absent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from hookline.domain.models import Record
from hookline.domain.repositories import drop_partition, record_fields
from hookline.errors import ConditionFailed
from hookline.ports import Query, Table

GroupKind = Literal["space", "course"]


class User(Record):
    id: str
    community_id: str
    email: str
    user_login: str
    first_name: str = ""
    last_name: str = ""
    password_hash: str
    created_at: str
    updated_at: str


class Group(Record):
    """A space or a course: both are named, slugged containers of members."""

    id: str
    community_id: str
    name: str
    slug: str
    description: str = ""
    created_at: str
    updated_at: str


class Space(Group):
    pass


class Course(Group):
    pass


class Membership(Record):
    """One user in one space (or course); stored once per side."""

    community_id: str
    user_id: str
    group_id: str
    kind: GroupKind
    joined_at: str


@dataclass(frozen=True)
class _Kind:
    name: GroupKind
    prefix: str  # range-key prefix of the group item and of the user-side membership
    slug_tag: str
    model: type[Group]


KINDS: dict[GroupKind, _Kind] = {
    "space": _Kind("space", "S#", "SPACESLUG", Space),
    "course": _Kind("course", "CO#", "COURSESLUG", Course),
}


def _c(community_id: str) -> str:
    return f"C#{community_id}"


class DirectoryRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # -- users ----------------------------------------------------------------------------

    def put_user(self, user: User) -> None:
        self.table.put(
            {"pk": _c(user.community_id), "sk": f"U#{user.id}", **user.model_dump()},
            if_absent=True,
        )

    def delete_user(self, community_id: str, user_id: str) -> None:
        self.table.delete(_c(community_id), f"U#{user_id}")

    def get_user(self, community_id: str, user_id: str) -> User | None:
        item = self.table.get(_c(community_id), f"U#{user_id}")
        return User.model_validate(record_fields(item)) if item else None

    def users(self, community_id: str, user_ids: list[str]) -> dict[str, User]:
        keys = [(_c(community_id), f"U#{uid}") for uid in dict.fromkeys(user_ids)]
        found = (User.model_validate(record_fields(i)) for i in self.table.batch_get(keys))
        return {user.id: user for user in found}

    def user_page(
        self, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[User], str | None]:
        page = self.table.query(Query(_c(community_id), prefix="U#", limit=limit, cursor=cursor))
        return [User.model_validate(record_fields(i)) for i in page.items], page.cursor

    def _lookup_key(self, community_id: str, tag: str, value: str) -> tuple[str, str]:
        sk = "SLUG" if tag.endswith("SLUG") else tag
        return f"{_c(community_id)}#{tag}#{value.lower()}", sk

    def _reserve(self, community_id: str, tag: str, value: str, owner: dict[str, str]) -> bool:
        pk, sk = self._lookup_key(community_id, tag, value)
        try:
            self.table.put(
                {"pk": pk, "sk": sk, "community_id": community_id, **owner}, if_absent=True
            )
        except ConditionFailed:
            return False
        return True

    def _release(self, community_id: str, tag: str, value: str, owner: dict[str, str]) -> None:
        pk, sk = self._lookup_key(community_id, tag, value)
        # Someone else may own it now (or nobody): then there is nothing of ours to release.
        with contextlib.suppress(ConditionFailed):
            self.table.delete(pk, sk, expect=owner)

    def _owner(self, community_id: str, tag: str, value: str, attr: str) -> str | None:
        item = self.table.get(*self._lookup_key(community_id, tag, value))
        return str(item[attr]) if item and item.get(attr) else None

    def reserve_email(self, community_id: str, email: str, user_id: str) -> bool:
        return self._reserve(community_id, "EMAIL", email, {"user_id": user_id})

    def release_email(self, community_id: str, email: str, user_id: str) -> None:
        self._release(community_id, "EMAIL", email, {"user_id": user_id})

    def user_id_by_email(self, community_id: str, email: str) -> str | None:
        return self._owner(community_id, "EMAIL", email, "user_id")

    def reserve_login(self, community_id: str, login: str, user_id: str) -> bool:
        return self._reserve(community_id, "LOGIN", login, {"user_id": user_id})

    def release_login(self, community_id: str, login: str, user_id: str) -> None:
        self._release(community_id, "LOGIN", login, {"user_id": user_id})

    # -- spaces and courses ---------------------------------------------------------------

    def put_group(self, kind: GroupKind, group: Group, *, new: bool = False) -> None:
        spec = KINDS[kind]
        item = {"pk": _c(group.community_id), "sk": f"{spec.prefix}{group.id}"}
        self.table.put({**item, **group.model_dump()}, if_absent=new)

    def get_group(self, kind: GroupKind, community_id: str, group_id: str) -> Group | None:
        spec = KINDS[kind]
        item = self.table.get(_c(community_id), f"{spec.prefix}{group_id}")
        return spec.model.model_validate(record_fields(item)) if item else None

    def groups(self, kind: GroupKind, community_id: str, group_ids: list[str]) -> dict[str, Group]:
        spec = KINDS[kind]
        keys = [(_c(community_id), f"{spec.prefix}{gid}") for gid in dict.fromkeys(group_ids)]
        found = (spec.model.model_validate(record_fields(i)) for i in self.table.batch_get(keys))
        return {group.id: group for group in found}

    def group_page(
        self, kind: GroupKind, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Group], str | None]:
        spec = KINDS[kind]
        page = self.table.query(
            Query(_c(community_id), prefix=spec.prefix, limit=limit, cursor=cursor)
        )
        return [spec.model.model_validate(record_fields(i)) for i in page.items], page.cursor

    def update_group(
        self, kind: GroupKind, community_id: str, group_id: str, changes: dict[str, Any]
    ) -> Group:
        """Raises ConditionFailed when the group does not exist."""
        spec = KINDS[kind]
        item = self.table.update(_c(community_id), f"{spec.prefix}{group_id}", set=changes)
        return spec.model.model_validate(record_fields(item))

    def delete_group(self, kind: GroupKind, community_id: str, group_id: str) -> None:
        self.table.delete(_c(community_id), f"{KINDS[kind].prefix}{group_id}")

    def reserve_slug(self, kind: GroupKind, community_id: str, slug: str, group_id: str) -> bool:
        return self._reserve(community_id, KINDS[kind].slug_tag, slug, {"group_id": group_id})

    def release_slug(self, kind: GroupKind, community_id: str, slug: str, group_id: str) -> None:
        self._release(community_id, KINDS[kind].slug_tag, slug, {"group_id": group_id})

    # -- a whole community ----------------------------------------------------------------

    def purge(self, community_id: str) -> int:
        """Delete every directory item of a community (its deletion); the number deleted."""
        base = _c(community_id)
        partitions: list[str] = []
        lookups: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            page = self.table.query(Query(base, limit=200, cursor=cursor))
            for item in page.items:
                sk = str(item["sk"])
                if sk.startswith("U#"):
                    partitions.append(f"{base}#{sk}")
                    lookups.append(self._lookup_key(community_id, "EMAIL", item["email"]))
                    lookups.append(self._lookup_key(community_id, "LOGIN", item["user_login"]))
                for kind in KINDS.values():
                    if sk.startswith(kind.prefix):
                        partitions.append(f"{base}#{sk}")
                        lookups.append(self._lookup_key(community_id, kind.slug_tag, item["slug"]))
            cursor = page.cursor
            if cursor is None:
                break
        deleted = sum(drop_partition(self.table, p) for p in partitions)
        for pk, sk in lookups:
            self.table.delete(pk, sk)
        return deleted + len(lookups) + drop_partition(self.table, base)

    # -- memberships ----------------------------------------------------------------------

    def _group_side(self, kind: GroupKind, m: Membership) -> tuple[str, str]:
        return f"{_c(m.community_id)}#{KINDS[kind].prefix}{m.group_id}", f"M#{m.user_id}"

    def _user_side(self, kind: GroupKind, m: Membership) -> tuple[str, str]:
        return f"{_c(m.community_id)}#U#{m.user_id}", f"{KINDS[kind].prefix}{m.group_id}"

    def add_member(self, membership: Membership) -> bool:
        """Store both sides; False when the user was already a member (nothing changes)."""
        kind = membership.kind
        record = membership.model_dump()
        group_pk, group_sk = self._group_side(kind, membership)
        user_pk, user_sk = self._user_side(kind, membership)
        try:
            self.table.put({"pk": group_pk, "sk": group_sk, **record}, if_absent=True)
            added = True
        except ConditionFailed:
            added = False
        # Written after the group side, and re-written if absent on a repeat, so an
        # interrupted add heals itself on the next call.
        with contextlib.suppress(ConditionFailed):
            self.table.put({"pk": user_pk, "sk": user_sk, **record}, if_absent=True)
        return added

    def remove_member(
        self, kind: GroupKind, community_id: str, group_id: str, user_id: str
    ) -> bool:
        """Delete both sides; False when the user was not a member."""
        probe = Membership(
            community_id=community_id, user_id=user_id, group_id=group_id, kind=kind, joined_at=""
        )
        group_pk, group_sk = self._group_side(kind, probe)
        try:
            self.table.delete(group_pk, group_sk, expect={"user_id": user_id})
            removed = True
        except ConditionFailed:
            removed = False
        self.table.delete(*self._user_side(kind, probe))
        return removed

    def is_member(self, kind: GroupKind, community_id: str, group_id: str, user_id: str) -> bool:
        probe = Membership(
            community_id=community_id, user_id=user_id, group_id=group_id, kind=kind, joined_at=""
        )
        return self.table.get(*self._group_side(kind, probe)) is not None

    def member_page(
        self,
        kind: GroupKind,
        community_id: str,
        group_id: str,
        *,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Membership], str | None]:
        pk = f"{_c(community_id)}#{KINDS[kind].prefix}{group_id}"
        page = self.table.query(Query(pk, prefix="M#", limit=limit, cursor=cursor))
        return [Membership.model_validate(record_fields(i)) for i in page.items], page.cursor

    def memberships_of(self, kind: GroupKind, community_id: str, user_id: str) -> list[Membership]:
        pk = f"{_c(community_id)}#U#{user_id}"
        found: list[Membership] = []
        cursor: str | None = None
        while True:
            page = self.table.query(Query(pk, prefix=KINDS[kind].prefix, limit=500, cursor=cursor))
            found.extend(Membership.model_validate(record_fields(i)) for i in page.items)
            cursor = page.cursor
            if cursor is None:
                return found
