"""The community directory: users, spaces, courses, memberships and the events they publish."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from hookline import wiring
from hookline.domain import directory
from hookline.domain.directory import Directory
from hookline.domain.directory_repository import DirectoryRepository
from hookline.errors import Conflict, InvalidParam, NotFound
from hookline.ports import Page, Query
from tests.incoming_helpers import World, aws_services, fast_hashing  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def world(memory_services: wiring.Services) -> World:
    return World.create(memory_services)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe@Example.COM ", "Jane.Doe@example.com"),
        ("o'neil+tag@mail.example.co.uk", "o'neil+tag@mail.example.co.uk"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_valid_emails(given: str, stored: str) -> None:
    assert directory.normalize_email(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "plain",
        "@example.com",
        "jane@",
        "jane@example",
        "jane@@example.com",
        ".jane@example.com",
        "jane.@example.com",
        "ja..ne@example.com",
        "jane doe@example.com",
        "jane@exa_mple.com",
        "jane@-example.com",
        "jane@example.c",
        "jane@exa\nmple.com",
        "jäne@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 60 + ".com",
    ],
)
def test_invalid_emails(given: str) -> None:
    with pytest.raises(InvalidParam) as caught:
        directory.normalize_email(given)
    assert caught.value.field == "email"


@pytest.mark.parametrize("given", [None, "", 5, ["a@example.com"], {"a": 1}])
def test_email_must_be_a_non_empty_string(given: Any) -> None:
    with pytest.raises(InvalidParam, match=r"email (is required|must be a string)"):
        directory.normalize_email(given)


def test_slugify() -> None:
    assert directory.slugify("Premium Members!") == "premium-members"
    assert directory.slugify("Café  Crème") == "cafe-creme"
    assert directory.slugify("!!!") == ""


# -- passwords --------------------------------------------------------------------------------


def test_password_hash_uses_the_real_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the production parameters, not fast_hashing's
    hashed = directory.hash_password("correct horse")
    scheme, n, r, p, salt, digest = hashed.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**14, 8, 5)
    assert len(salt) >= 20 and len(digest) >= 40
    assert directory.verify_password("correct horse", hashed)
    assert not directory.verify_password("correct horse ", hashed)
    assert not directory.verify_password("x", "md5$abc")


def test_each_hash_has_its_own_salt() -> None:
    assert directory.hash_password("same") != directory.hash_password("same")


# -- users ------------------------------------------------------------------------------------


def test_register_is_unique_by_email_case_insensitively(world: World) -> None:
    d = world.directory()
    user, created = d.register("Jane@Example.com", first_name="Jane", password="pw-123456")
    assert created and user.user_login == "jane"
    again, created_again = d.register(directory.normalize_email("JANE@example.COM"))
    assert not created_again and again.id == user.id
    assert d.find_by_email("jane@EXAMPLE.com") is not None
    registered = world.events("user.registered")
    assert len(registered) == 1
    assert registered[0]["data"]["user"] == directory.user_view(user)
    assert "password_hash" not in json.dumps(registered[0])


def test_login_unique_per_community(world: World, memory_services: wiring.Services) -> None:
    d = world.directory()
    d.register("a@example.com", user_login="johndoe")
    with pytest.raises(InvalidParam) as caught:
        d.register("b@example.com", user_login="JohnDoe")
    assert caught.value.field == "user_login"
    # the failed registration left nothing behind
    assert d.find_by_email("b@example.com") is None
    other = World.create(memory_services, name="Other")
    user, created = other.directory().register("b@example.com", user_login="johndoe")
    assert created and user.user_login == "johndoe"


def test_generated_logins(world: World) -> None:
    d = world.directory()
    first, _ = d.register("j.o-hn+x@example.com")
    second, _ = d.register("j.o-hn+x@example.org")
    third, _ = d.register("+++@example.org")
    assert (first.user_login, second.user_login, third.user_login) == (
        "j.o-hnx",
        "j.o-hnx1",
        "user",
    )


def test_password_is_never_stored_in_plain(world: World) -> None:
    user, _ = world.directory().register("p@example.com", password="Plain-Text-Pass")
    assert directory.verify_password("Plain-Text-Pass", user.password_hash)
    dumped = json.dumps(world.services.tables.directory.scan_all())  # type: ignore[attr-defined]
    assert "Plain-Text-Pass" not in dumped
    assert "password_hash" not in directory.user_view(user)


def test_dangling_email_lookup_is_released(world: World) -> None:
    repo = DirectoryRepository(world.services.tables.directory)
    assert repo.reserve_email(world.community.id, "ghost@example.com", "usr_gone")
    d = world.directory()
    assert d.find_by_email("ghost@example.com") is None
    user, created = d.register("ghost@example.com")
    assert created and d.find_by_email("ghost@example.com") == user


# -- spaces and courses -----------------------------------------------------------------------


def test_space_lifecycle_and_events(world: World) -> None:
    d = world.directory()
    space = d.create_group("space", name="Premium Members", description="Paid")
    assert (space.slug, space.description) == ("premium-members", "Paid")
    second = d.create_group("space", name="Premium members")
    assert second.slug == "premium-members-2"
    with pytest.raises(Conflict) as caught:
        d.create_group("space", name="X", slug="premium-members")
    assert caught.value.field == "slug"
    with pytest.raises(InvalidParam):
        d.create_group("space", name="X", slug="Not A Slug")
    with pytest.raises(InvalidParam):
        d.create_group("space", name="   ")

    renamed = d.update_group("space", space.id, name="Gold", slug="gold")
    assert (renamed.name, renamed.slug) == ("Gold", "gold")
    assert d.create_group("space", name="Premium Members").slug == "premium-members"  # freed
    with pytest.raises(Conflict):
        d.update_group("space", second.id, slug="gold")

    d.delete_group("space", space.id)
    with pytest.raises(NotFound):
        d.get_group("space", space.id)
    assert d.create_group("space", name="Gold").slug == "gold"
    counts = Counter(e["event"] for e in world.events())
    assert counts["space.created"] == 4 and counts["space.updated"] == 1
    assert counts["space.deleted"] == 1


def test_courses_publish_no_lifecycle_events(world: World) -> None:
    d = world.directory()
    course = d.create_group("course", name="Onboarding")
    d.update_group("course", course.id, name="Onboarding 101")
    d.delete_group("course", course.id)
    assert world.events() == []


def test_join_and_leave_are_idempotent(world: World) -> None:
    d = world.directory()
    space, course = d.create_group("space", name="S"), d.create_group("course", name="C")
    user, _ = d.register("m@example.com")
    assert d.join("space", space, user) is True
    assert d.join("space", space, user) is False
    assert d.join("course", course, user) is True
    assert d.leave("space", space, user) is True
    assert d.leave("space", space, user) is False
    assert d.leave("course", course, user) is True
    assert d.leave("course", course, user) is False
    counts = Counter(e["event"] for e in world.events())
    assert counts == Counter(
        {
            "space.created": 1,
            "user.registered": 1,
            "member.joined": 1,
            "space.member_joined": 1,
            "space.member_left": 1,
            "course.enrolled": 1,
            "course.unenrolled": 1,
        }
    )
    joined = world.events("course.enrolled")[0]["data"]
    assert joined["course"] == {"id": course.id, "name": "C", "slug": "c"}
    assert joined["user"]["id"] == user.id and joined["source"] == "api"


class _CountingTable:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.queries: list[Query] = []

    def query(self, query: Query) -> Page:
        self.queries.append(query)
        return self.inner.query(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_members_of_a_space_and_spaces_of_a_user_are_one_query_each(world: World) -> None:
    d = world.directory()
    spaces = [d.create_group("space", name=f"S{i}") for i in range(3)]
    users = [d.register(f"u{i}@example.com")[0] for i in range(4)]
    for space in spaces:
        for user in users:
            d.join("space", space, user)
    counting = _CountingTable(world.services.tables.directory)
    repo = DirectoryRepository(counting)  # type: ignore[arg-type]
    members, _ = repo.member_page("space", world.community.id, spaces[0].id, limit=50, cursor=None)
    assert sorted(m.user_id for m in members) == sorted(u.id for u in users)
    assert len(counting.queries) == 1
    mine = repo.memberships_of("space", world.community.id, users[0].id)
    assert sorted(m.group_id for m in mine) == sorted(s.id for s in spaces)
    assert len(counting.queries) == 2


def test_deleting_a_space_removes_both_sides_of_its_memberships(world: World) -> None:
    d = world.directory()
    keep, gone = d.create_group("space", name="Keep"), d.create_group("space", name="Gone")
    users = [d.register(f"u{i}@example.com")[0] for i in range(3)]
    for user in users:
        d.join("space", keep, user)
        d.join("space", gone, user)
    d.delete_group("space", gone.id)
    for user in users:
        detail = d.member_detail(user)
        assert [s["id"] for s in detail["spaces"]] == [keep.id]
    assert not any(
        gone.id in str(item.get("pk", "")) + str(item.get("sk", ""))
        for item in world.services.tables.directory.scan_all()  # type: ignore[attr-defined]
    )


def test_member_detail(world: World) -> None:
    d = world.directory()
    space, course = d.create_group("space", name="S"), d.create_group("course", name="C")
    user, _ = d.register("m@example.com", first_name="Mo")
    d.join("space", space, user)
    d.join("course", course, user)
    detail = d.member_detail(user)
    assert detail["first_name"] == "Mo" and "password_hash" not in detail
    assert [s["id"] for s in detail["spaces"]] == [space.id]
    assert [c["slug"] for c in detail["courses"]] == ["c"]


def test_unknown_community() -> None:
    from hookline_dev.memory import MemoryTables

    with pytest.raises(NotFound):
        Directory.open(MemoryTables(), "com_missing")


# -- the same rules over DynamoDB -------------------------------------------------------------


def test_rules_hold_on_dynamodb(memory_services: wiring.Services) -> None:
    """The conditional writes (if-absent lookups, expect-on-delete) behave the same on moto's
    DynamoDB, with the table built from template.yaml."""
    with aws_services(memory_services, mail=False, tables=True) as services:
        world = World.create(services)
        d = world.directory()
        user, created = d.register("Dy@Example.com", user_login="dy")
        assert created
        assert d.register("dy@example.com")[0].id == user.id
        with pytest.raises(InvalidParam):
            d.register("other@example.com", user_login="DY")
        space = d.create_group("space", name="Premium")
        with pytest.raises(Conflict):
            d.create_group("space", name="Other", slug="premium")
        assert d.join("space", space, user) and not d.join("space", space, user)
        assert d.member_page("space", space.id, limit=10, cursor=None)[0][0]["id"] == user.id
        assert d.leave("space", space, user) and not d.leave("space", space, user)
        d.delete_group("space", space.id)
        assert d.create_group("space", name="Premium").slug == "premium"
        assert len(world.events("user.registered")) == 1
