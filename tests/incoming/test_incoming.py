"""POST /v1/hooks/{token} through functions/inbound/app.py: content types, the peer behaviour,
protections, the activity log, the welcome email through moto's SES, and the way to delivery."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline import wiring
from hookline.domain import (
    directory,
    incoming,
    incoming_processor,
    incoming_repository,
    incoming_signature,
)
from hookline.domain.directory_repository import DirectoryRepository
from hookline.domain.incoming_repository import IncomingRepository
from hookline.domain.signing import body_signature
from hookline.observability import logger
from hookline.receiver import SignedMessage
from tests.apigw import sample
from tests.incoming_helpers import (
    SENDER,
    World,
    aws_services,
    call_inbound,
    fast_hashing,  # noqa: F401  (fixture)
    multipart,
    post,
    post_form,
    sent_mail,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")

EMAIL = "jane.doe@example.com"


@pytest.fixture
def world(memory_services: wiring.Services) -> World:
    return World.create(memory_services)


@pytest.fixture
def setup(world: World) -> dict[str, Any]:
    """A space, a course and an incoming webhook adding to both with the welcome email on."""
    space = world.space("Premium")
    course = world.course("Onboarding")
    hook, token = world.incoming(
        add_spaces=[space.id], add_courses=[course.id], send_welcome_email=True
    )
    return {"space": space, "course": course, "hook": hook, "token": token}


def _repo(world: World) -> DirectoryRepository:
    return DirectoryRepository(world.services.tables.directory)


def _mailbox(world: World) -> list[dict[str, str]]:
    return world.services.mailer.sent  # type: ignore[attr-defined, no-any-return]


# -- content types ----------------------------------------------------------------------------


def test_sample_multipart_event_creates_the_user(world: World, setup: dict[str, Any]) -> None:
    """events/inbound-form-post.json (base64 multipart, as API Gateway passes it) as is."""
    event = sample("inbound-form-post")
    event["pathParameters"]["token"] = setup["token"]
    status, body = call_inbound(event)
    assert status == 200, body
    assert body == {
        "success": True,
        "message": "User created; added to space Premium; enrolled in course Onboarding; "
        "welcome email sent",
        "user_id": body["user_id"],
    }
    user = _repo(world).get_user(world.community.id, body["user_id"])
    assert user is not None
    assert (user.email, user.first_name, user.last_name) == (EMAIL, "Jane", "Doe")
    assert user.user_login == "jane.doe"
    repo = _repo(world)
    assert repo.is_member("space", world.community.id, setup["space"].id, user.id)
    assert repo.is_member("course", world.community.id, setup["course"].id, user.id)
    assert sorted(e["event"] for e in world.events()) == [
        "course.enrolled",
        "member.joined",
        "space.created",
        "space.member_joined",
        "user.registered",
    ]


def test_urlencoded_body(world: World, setup: dict[str, Any]) -> None:
    body = b"email=sam%40example.com&first_name=Sam&last_name=O%27Neil"
    status, answer = post(setup["token"], body, "application/x-www-form-urlencoded")
    assert status == 200, answer
    user = _repo(world).get_user(world.community.id, answer["user_id"])
    assert user is not None and (user.email, user.last_name) == ("sam@example.com", "O'Neil")


def test_json_body(world: World, setup: dict[str, Any]) -> None:
    payload = {"email": "kim@example.com", "first_name": "Kim", "user_login": "kimk"}
    status, answer = post(
        setup["token"], json.dumps(payload).encode(), "application/json; charset=utf-8"
    )
    assert status == 200, answer
    user = _repo(world).get_user(world.community.id, answer["user_id"])
    assert user is not None and user.user_login == "kimk" and user.first_name == "Kim"


def test_multipart_as_requests_sends_it_with_utf8_values(
    world: World, setup: dict[str, Any]
) -> None:
    prepared = requests.Request(
        "POST",
        "https://example.com/v1/hooks/x",
        files={
            "email": (None, "jose@example.com"),
            "first_name": (None, "José"),
            "avatar": ("me.png", b"\x89PNG\x00\xff"),
        },
    ).prepare()
    assert isinstance(prepared.body, bytes)
    status, answer = post(setup["token"], prepared.body, prepared.headers["Content-Type"])
    assert status == 200, answer
    user = _repo(world).get_user(world.community.id, answer["user_id"])
    assert user is not None and user.first_name == "José"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_other_content_types_get_415(setup: dict[str, Any], content_type: str | None) -> None:
    status, answer = post(setup["token"], b"email=a@example.com", content_type)
    assert status == 415
    assert answer["success"] is False
    assert "multipart/form-data" in answer["message"]


def test_broken_bodies_get_400(setup: dict[str, Any]) -> None:
    status, answer = post(setup["token"], b"{not json", "application/json")
    assert (status, answer["success"]) == (400, False)
    assert "JSON" in answer["message"]
    status, answer = post(setup["token"], b"[1, 2]", "application/json")
    assert status == 400 and "object" in answer["message"]
    status, answer = post(setup["token"], b"no boundary here", "multipart/form-data", encode=True)
    assert status == 400 and "boundary" in answer["message"]
    status, answer = post(setup["token"], b"\xff\xfe", "multipart/form-data; boundary=xyz")
    assert status == 400


# -- the peer behaviour -----------------------------------------------------------------------


def test_new_user_gets_generated_login_and_random_password(
    world: World, setup: dict[str, Any]
) -> None:
    status, answer = post_form(setup["token"], {"email": "Jane.Doe+vip@Example.COM"})
    assert status == 200, answer
    user = _repo(world).get_user(world.community.id, answer["user_id"])
    assert user is not None
    assert user.email == "Jane.Doe+vip@example.com"
    assert user.user_login == "jane.doevip"  # "+" is not a login character
    assert user.password_hash.startswith("scrypt$")


def test_login_from_email_is_made_unique(world: World, setup: dict[str, Any]) -> None:
    logins = []
    for address in ("sam@one.example", "sam@two.example", "SAM@three.example"):
        status, answer = post_form(setup["token"], {"email": address})
        assert status == 200, answer
        user = _repo(world).get_user(world.community.id, answer["user_id"])
        assert user is not None
        logins.append(user.user_login)
    assert logins == ["sam", "sam1", "sam2"]


def test_given_password_is_stored_hashed(world: World, setup: dict[str, Any]) -> None:
    status, answer = post_form(
        setup["token"], {"email": "pat@example.com", "user_pass": "SecurePassword123"}
    )
    assert status == 200
    user = _repo(world).get_user(world.community.id, answer["user_id"])
    assert user is not None
    assert directory.verify_password("SecurePassword123", user.password_hash)
    assert not directory.verify_password("securepassword123", user.password_hash)


def test_taken_user_login_is_400_naming_the_field(world: World, setup: dict[str, Any]) -> None:
    assert post_form(setup["token"], {"email": "a@example.com", "user_login": "johndoe"})[0] == 200
    status, answer = post_form(setup["token"], {"email": "b@example.com", "user_login": "JohnDoe"})
    assert status == 400
    assert answer == {"success": False, "message": "user_login 'JohnDoe' is already taken."}
    assert world.directory().find_by_email("b@example.com") is None


def test_existing_user_fields_are_ignored_and_no_welcome_email(
    world: World, setup: dict[str, Any]
) -> None:
    user, created = world.directory().register(
        EMAIL, first_name="Jane", user_login="jane", password="original-pass"
    )
    assert created
    status, answer = post_form(
        setup["token"],
        {
            "email": "JANE.DOE@example.com",
            "first_name": "Mallory",
            "last_name": "Other",
            "user_login": "mallory",
            "user_pass": "changed-pass",
        },
    )
    assert status == 200, answer
    assert answer["user_id"] == user.id
    assert answer["message"] == (
        "Existing user; added to space Premium; enrolled in course Onboarding"
    )
    stored = _repo(world).get_user(world.community.id, user.id)
    assert stored is not None
    assert (stored.first_name, stored.last_name, stored.user_login) == ("Jane", "", "jane")
    assert directory.verify_password("original-pass", stored.password_hash)
    assert _mailbox(world) == []
    assert len(world.events("user.registered")) == 1  # the direct registration only


def test_removals(world: World) -> None:
    keep, drop = world.space("Free"), world.space("Premium")
    course = world.course("Advanced")
    user, _ = world.directory().register(EMAIL)
    d = world.directory()
    for group, kind in ((keep, "space"), (drop, "space"), (course, "course")):
        d.join(kind, group, user)  # type: ignore[arg-type]
    _hook, token = world.incoming(remove_spaces=[drop.id], remove_courses=[course.id])

    status, answer = post_form(token, {"email": EMAIL})
    assert status == 200, answer
    assert answer["message"] == (
        "Existing user; removed from space Premium; removed from course Advanced"
    )
    repo = _repo(world)
    assert repo.is_member("space", world.community.id, keep.id, user.id)
    assert not repo.is_member("space", world.community.id, drop.id, user.id)
    assert not repo.is_member("course", world.community.id, course.id, user.id)
    assert [m.group_id for m in repo.memberships_of("space", world.community.id, user.id)] == [
        keep.id
    ]
    left = world.events("space.member_left")
    assert [e["data"]["space"]["id"] for e in left] == [drop.id]
    assert left[0]["data"]["user"]["email"] == EMAIL
    assert left[0]["actor"] == {"type": "incoming_webhook", "id": _hook.id, "name": "Test hook"}
    assert len(world.events("course.unenrolled")) == 1

    status, answer = post_form(token, {"email": EMAIL})
    assert status == 200
    assert answer["message"] == "Nothing to change: user not in any space or course to remove"


def test_same_request_twice_changes_nothing_the_second_time(
    world: World, setup: dict[str, Any]
) -> None:
    first = post_form(setup["token"], {"email": EMAIL, "first_name": "Jane"})
    second = post_form(setup["token"], {"email": EMAIL, "first_name": "Jane"})
    assert first[0] == second[0] == 200
    assert first[1]["user_id"] == second[1]["user_id"]
    assert second[1]["message"] == (
        "Nothing to change: user already a member of every configured space and course"
    )
    repo = _repo(world)
    users, _ = repo.user_page(world.community.id, limit=50, cursor=None)
    assert len(users) == 1
    members, _ = repo.member_page(
        "space", world.community.id, setup["space"].id, limit=50, cursor=None
    )
    assert len(members) == 1
    assert len(world.events("user.registered")) == 1
    assert len(world.events("space.member_joined")) == 1
    assert len(world.events("course.enrolled")) == 1
    assert len(_mailbox(world)) == 1


def test_concurrent_identical_calls_make_one_user(world: World, setup: dict[str, Any]) -> None:
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def call() -> None:
        start.wait()
        result = post_form(setup["token"], {"email": "race@example.com"})
        with lock:
            results.append(result)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200] * 6
    assert len({body["user_id"] for _, body in results}) == 1
    users, _ = _repo(world).user_page(world.community.id, limit=50, cursor=None)
    assert len(users) == 1
    assert len(world.events("user.registered")) == 1
    assert len(world.events("space.member_joined")) == 1
    assert len(_mailbox(world)) == 1


def test_a_space_deleted_after_configuration_is_skipped(
    world: World, setup: dict[str, Any]
) -> None:
    world.directory().delete_group("space", setup["space"].id)
    status, answer = post_form(setup["token"], {"email": EMAIL})
    assert status == 200
    assert "skipped space" in answer["message"]
    assert "enrolled in course Onboarding" in answer["message"]


def test_welcome_email_off(world: World) -> None:
    _hook, token = world.incoming(send_welcome_email=False)
    status, answer = post_form(token, {"email": EMAIL})
    assert status == 200 and answer["message"] == "User created"
    assert _mailbox(world) == []


def test_welcome_email_is_sent_through_ses(world: World, setup: dict[str, Any]) -> None:
    with aws_services(world.services):
        status, answer = post_form(
            setup["token"], {"email": EMAIL, "first_name": "Jane", "user_pass": "S3cret-pass!"}
        )
        assert status == 200, answer
        status, answer = post_form(setup["token"], {"email": EMAIL})  # existing: no email
        assert status == 200
        status, answer = post_form(setup["token"], {"email": "other@example.com"})
        assert status == 200
        messages = sent_mail()
    assert [m.destinations["ToAddresses"] for m in messages] == [[EMAIL], ["other@example.com"]]
    first = messages[0]
    assert first.source == SENDER
    assert first.subject == "Welcome to Acme Forum"
    assert "Hi Jane" in first.body and "Username: jane.doe" in first.body
    assert "S3cret-pass!" not in first.body


def test_mail_outage_does_not_fail_the_call(world: World, setup: dict[str, Any]) -> None:
    class Broken:
        def send(self, **_: Any) -> None:
            raise RuntimeError("SES unavailable")

    wiring.configure(mailer=Broken())
    status, answer = post_form(setup["token"], {"email": EMAIL})
    assert status == 200
    assert answer["message"].endswith("welcome email could not be sent")
    assert world.directory().find_by_email(EMAIL) is not None


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "email is required."),
        ({"email": ""}, "email is required."),
        ({"first_name": "Jane"}, "email is required."),
        ({"email": "not-an-email"}, "email is not a valid email address."),
        ({"email": "a@b"}, "email is not a valid email address."),
        ({"email": "a..b@example.com"}, "email is not a valid email address."),
        ({"email": "a b@example.com"}, "email is not a valid email address."),
        ({"email": "a@-example.com"}, "email is not a valid email address."),
        ({"email": "a" * 65 + "@example.com"}, "email is not a valid email address."),
        ({"email": "a@" + "b" * 250 + ".com"}, "email is longer than 254 characters."),
        ({"email": EMAIL, "user_login": "bad login!"}, "user_login may contain only"),
        ({"email": EMAIL, "first_name": "x" * 101}, "first_name is longer than 100"),
    ],
)
def test_bad_fields_get_400(
    world: World, setup: dict[str, Any], fields: dict[str, str], message: str
) -> None:
    status, answer = post_form(setup["token"], fields)
    assert status == 400
    assert answer["success"] is False
    assert answer["message"].startswith(message)
    assert "user_id" not in answer
    users, _ = _repo(world).user_page(world.community.id, limit=5, cursor=None)
    assert users == []


@pytest.mark.parametrize("email", [123, ["a@example.com"], {"x": 1}, True, None])
def test_non_string_email_in_json_is_400(setup: dict[str, Any], email: Any) -> None:
    status, answer = post(setup["token"], json.dumps({"email": email}).encode(), "application/json")
    assert status == 400
    expected = "email is required." if email is None else "email must be a string."
    assert answer == {"success": False, "message": expected}


def test_non_string_optional_fields_in_json_are_400(setup: dict[str, Any]) -> None:
    body = json.dumps({"email": EMAIL, "first_name": 7}).encode()
    status, answer = post(setup["token"], body, "application/json")
    assert (status, answer["message"]) == (400, "first_name must be a string.")


def test_oversized_body_is_413(world: World) -> None:
    _hook, token = world.incoming(max_body_bytes=2048)
    status, answer = post_form(token, {"email": EMAIL, "bio": "x" * 3000})
    assert status == 413 and answer["success"] is False
    _hook, default_token = world.incoming()
    big = {"email": EMAIL, "bio": "x" * (incoming_repository.DEFAULT_MAX_BODY_BYTES + 1)}
    assert post_form(default_token, big)[0] == 413
    huge = b"email=a%40example.com&x=" + b"x" * incoming.HARD_MAX_BODY_BYTES
    assert post("unknown-token", huge, "application/x-www-form-urlencoded")[0] == 413


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["nope", "x" * 43, "", "a" * 300])
def test_unknown_token_is_404_without_hint(setup: dict[str, Any], token: str) -> None:
    status, answer = post_form(token, {"email": EMAIL})
    assert (status, answer) == (404, {"success": False, "message": "Not found."})


def test_rotated_inactive_and_deleted_tokens_are_404(world: World, setup: dict[str, Any]) -> None:
    repo = IncomingRepository(world.services.tables.communities)
    old = setup["token"]
    _, new = incoming.rotate_token(repo, world.community.id, setup["hook"].id)
    assert post_form(old, {"email": EMAIL}) == (404, {"success": False, "message": "Not found."})
    assert post_form(new, {"email": EMAIL})[0] == 200

    d = world.directory()
    incoming.update_incoming(repo, d, setup["hook"].id, {"status": "inactive"})
    assert post_form(new, {"email": EMAIL}) == (404, {"success": False, "message": "Not found."})
    assert world.logs(setup["hook"].id)[0].reason == "inactive"

    incoming.delete_incoming(repo, world.community.id, setup["hook"].id)
    assert post_form(new, {"email": EMAIL})[0] == 404


# -- protections ------------------------------------------------------------------------------


def test_ip_allowlist(world: World) -> None:
    hook, token = world.incoming(allowed_ips=["198.51.100.0/24", "2001:db8::/32"])
    assert post_form(token, {"email": EMAIL}, source_ip="198.51.100.7")[0] == 200
    assert post_form(token, {"email": EMAIL}, source_ip="::ffff:198.51.100.8")[0] == 200
    assert post_form(token, {"email": EMAIL}, source_ip="2001:db8::1")[0] == 200
    status, answer = post_form(token, {"email": "x@example.com"}, source_ip="203.0.113.10")
    assert status == 403 and answer["success"] is False
    assert post_form(token, {"email": EMAIL}, source_ip="")[0] == 403
    assert world.directory().find_by_email("x@example.com") is None
    rejected = world.logs(hook.id)[0]
    assert (rejected.outcome, rejected.reason, rejected.source_ip) == (
        "rejected",
        "ip_not_allowed",
        "",
    )


SECRET = "whsec_" + base64.b64encode(b"incoming-signing-key-0123456789ab").decode()


def _signed(
    body: bytes, *, secret: str = SECRET, at: datetime | None = None, msg_id: str = "msg_1"
) -> dict[str, str]:
    """Standard Webhooks headers made by the public `standardwebhooks` library."""
    moment = at or datetime.now(UTC)
    signature = StandardWebhook(secret).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def test_required_signature(world: World) -> None:
    _hook, token = world.incoming(signing_secret=SECRET)
    body = json.dumps({"email": EMAIL}).encode()
    status, answer = post(token, body, "application/json", headers=_signed(body))
    assert status == 200, answer

    status, answer = post(token, body, "application/json")
    assert status == 401 and answer["success"] is False
    assert "Signature verification failed" in answer["message"]

    other = "whsec_" + base64.b64encode(b"some-other-key-0123456789abcdefgh").decode()
    assert post(token, body, "application/json", headers=_signed(body, secret=other))[0] == 401
    stale = datetime.now(UTC) - timedelta(minutes=6)
    assert post(token, body, "application/json", headers=_signed(body, at=stale))[0] == 401
    tampered = json.dumps({"email": "evil@example.com"}).encode()
    assert post(token, tampered, "application/json", headers=_signed(body))[0] == 401
    assert world.directory().find_by_email("evil@example.com") is None


def test_the_body_only_scheme_is_refused_even_with_a_fresh_timestamp(world: World) -> None:
    """X-Hookline-Signature covers the body only: a captured call with a new timestamp header
    would pass forever, so incoming calls must use the Standard Webhooks headers."""
    hook, token = world.incoming(signing_secret=SECRET)
    body, content_type = multipart({"email": EMAIL})
    headers = {
        "X-Hookline-Signature": body_signature(SECRET, body),
        "X-Hookline-Timestamp": str(int(time.time())),
    }
    status, answer = post(token, body, content_type, headers=headers)
    assert status == 401, answer
    assert "X-Hookline-Signature does not cover a timestamp" in answer["message"]
    assert "webhook-signature" in answer["message"]
    assert world.directory().find_by_email(EMAIL) is None
    assert world.logs(hook.id)[0].reason == "bad_signature"


def test_a_signed_multipart_call(world: World) -> None:
    _hook, token = world.incoming(signing_secret=SECRET)
    body, content_type = multipart({"email": EMAIL})
    status, answer = post(token, body, content_type, headers=_signed(body, msg_id="msg_mp"))
    assert status == 200, answer


def test_a_replayed_call_is_refused_within_the_window(world: World) -> None:
    hook, token = world.incoming(signing_secret=SECRET)
    body = json.dumps({"email": EMAIL}).encode()
    captured = _signed(body, msg_id="msg_replayed")
    assert post(token, body, "application/json", headers=captured)[0] == 200

    status, answer = post(token, body, "application/json", headers=captured)
    assert status == 409, answer
    assert answer == {
        "success": False,
        "message": "This webhook-id was already received: a signed call is accepted once "
        "(ids are remembered for 5 minutes).",
    }
    # re-signing the same id needs the secret, yet is a replay too
    again = _signed(body, msg_id="msg_replayed", at=datetime.now(UTC) + timedelta(seconds=30))
    assert post(token, body, "application/json", headers=again)[0] == 409
    # a new id is a new call
    assert post(token, body, "application/json", headers=_signed(body, msg_id="msg_new"))[0] == 200
    assert [(e.status_code, e.reason) for e in world.logs(hook.id)] == [
        (200, None),
        (409, "replayed"),
        (409, "replayed"),
        (200, None),
    ]


def test_ids_are_remembered_per_incoming_webhook(world: World) -> None:
    _first, first_token = world.incoming(signing_secret=SECRET)
    _second, second_token = world.incoming(name="second", signing_secret=SECRET)
    body = json.dumps({"email": EMAIL}).encode()
    headers = _signed(body, msg_id="msg_shared")
    assert post(first_token, body, "application/json", headers=headers)[0] == 200
    assert post(second_token, body, "application/json", headers=headers)[0] == 200


def test_an_overlong_webhook_id_is_refused(world: World) -> None:
    _hook, token = world.incoming(signing_secret=SECRET)
    body = json.dumps({"email": EMAIL}).encode()
    status, answer = post(token, body, "application/json", headers=_signed(body, msg_id="m" * 300))
    assert status == 401 and "webhook-id must be at most 256" in answer["message"]


def test_the_replay_guard_forgets_an_id_after_its_window(memory_services: wiring.Services) -> None:
    guard = incoming_signature.ReplayGuard(memory_services.tables.communities)
    sent = SignedMessage("msg_1", 1_000_000)
    assert guard.claim("in_1", sent, now=1_000_000) is True
    assert guard.claim("in_1", sent, now=1_000_299) is False
    # past the window the stored claim may linger (TTL deletes lazily); it no longer counts
    assert guard.claim("in_1", SignedMessage("msg_1", 1_000_400), now=1_000_400) is True
    assert guard.claim("in_1", SignedMessage("msg_1", 1_000_401), now=1_000_401) is False
    guard.release("in_1", "msg_1")
    assert guard.claim("in_1", SignedMessage("msg_1", 1_000_402), now=1_000_402) is True
    stored = memory_services.tables.communities.get("INSEEN#in_1", "msg_1")
    assert stored is not None and stored["expires_at"] == 1_000_702


def test_a_call_that_fails_on_our_side_releases_its_id(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hook, token = world.incoming(signing_secret=SECRET)
    body = json.dumps({"email": EMAIL}).encode()
    headers = _signed(body, msg_id="msg_retry")
    calls = {"n": 0}
    real_act = incoming_processor._act

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("storage outage")
        return real_act(*args, **kwargs)

    monkeypatch.setattr(incoming_processor, "_act", failing_once)
    assert post(token, body, "application/json", headers=headers)[0] == 500
    assert post(token, body, "application/json", headers=headers)[0] == 200


def test_generated_signing_secret(world: World) -> None:
    hook, token = world.incoming(require_signature=True)
    assert hook.signing_secret and hook.signing_secret.startswith("whsec_")
    body = b"email=a%40example.com"
    headers = _signed(body, secret=hook.signing_secret)
    status, _ = post(token, body, "application/x-www-form-urlencoded", headers=headers)
    assert status == 200


# -- activity log and secrecy -----------------------------------------------------------------


def test_every_call_is_logged(world: World, setup: dict[str, Any]) -> None:
    post_form(setup["token"], {"email": EMAIL})
    post_form(setup["token"], {"email": "bad"})
    post(setup["token"], b"x", "text/plain")
    entries = world.logs(setup["hook"].id)
    assert [(e.outcome, e.status_code, e.reason) for e in entries] == [
        ("rejected", 415, "unsupported_media_type"),
        ("rejected", 400, "invalid_email"),
        ("processed", 200, None),
    ]
    created = entries[-1]
    assert created.source_ip == "203.0.113.10" and created.user_id
    assert [a["type"] for a in created.actions] == [
        "user_created",
        "space_joined",
        "course_enrolled",
        "welcome_email_sent",
    ]
    assert entries[1].error == "email is not a valid email address."


def test_password_and_token_appear_nowhere(
    world: World,
    setup: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = "Sup3r-Secret-Passw0rd"
    token = setup["token"]
    post_form(token, {"email": EMAIL, "user_pass": password})
    post(token, json.dumps({"email": 5, "user_pass": password}).encode(), "application/json")
    post_form(token, {"email": "bad email", "user_pass": password})
    post_form(token + "x", {"email": EMAIL, "user_pass": password})
    output = capsys.readouterr()
    # Each log record as the Lambda log line it becomes (powertools' JSON formatter).
    lines = [logger.registered_formatter.format(r) for r in caplog.records]
    logged = "\n".join([*lines, output.out, output.err])
    assert '"message":"inbound call"' in logged
    assert '"outcome":"processed"' in logged and '"reason":"invalid_email"' in logged
    for secret in (password, token):
        assert secret not in logged
    stored = json.dumps(
        [
            world.services.tables.communities.scan_all(),  # type: ignore[attr-defined]
            world.services.tables.directory.scan_all(),  # type: ignore[attr-defined]
            world.services.tables.events.scan_all(),  # type: ignore[attr-defined]
        ],
        default=str,
    )
    assert password not in stored
    assert token not in stored
    assert "user_pass" not in stored


def test_metrics_count_calls_and_the_log_names_the_rejection_reason(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    post_form(setup["token"], {"email": EMAIL})
    post_form("nope", {"email": EMAIL})
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    metrics = [m for m in out if "_aws" in m]
    processed = [m for m in metrics if "InboundProcessed" in m]
    rejected = [m for m in metrics if "InboundRejected" in m]
    assert len(processed) == 1 and len(rejected) == 1
    # Low-cardinality dimensions only; the reason lives in the log line the saved query reads.
    assert "reason" not in rejected[0] and "reason" not in processed[0]
    [record] = [
        r
        for r in caplog.records
        if r.getMessage() == "inbound call" and getattr(r, "outcome", "") == "rejected"
    ]
    assert record.reason == "unknown_token"  # type: ignore[attr-defined]


# -- end to end -------------------------------------------------------------------------------


def test_incoming_call_reaches_an_outbound_webhook(memory_services: wiring.Services) -> None:
    """Moto's DynamoDB (tables and stream from template.yaml) and SES: the call's events come off
    the events table's stream, go through functions/dispatch/app.py and arrive, signed, at a
    loopback receiver subscribed to user.* and space.*."""
    import boto3

    from hookline.domain import webhooks
    from hookline.domain.repositories import WebhookRepository
    from hookline_dev.local.lambdas import LambdaContext, load_handler
    from hookline_dev.local.poller import StreamReader
    from tests.receivers import Receiver

    with aws_services(memory_services, tables=True) as services, Receiver() as rx:
        world = World.create(services)
        space = world.space("Premium")
        course = world.course("Onboarding")
        _hook, token = world.incoming(
            add_spaces=[space.id], add_courses=[course.id], send_welcome_email=True
        )
        outbound = webhooks.create_webhook(
            WebhookRepository(services.tables.webhooks),
            world.community.id,
            {"url": rx.url_for("/community"), "events": ["user.*", "space.*"]},
            allow_private=True,
        )
        table = boto3.client("dynamodb", region_name="us-east-1").describe_table(
            TableName=services.settings.events_table
        )
        reader = StreamReader(table["Table"]["LatestStreamArn"])

        status, answer = post_form(token, {"email": EMAIL, "first_name": "Jane"})
        assert status == 200, answer
        records = reader.read()
        assert sorted(r["dynamodb"]["NewImage"]["event"]["S"] for r in records) == [
            "course.enrolled",
            "member.joined",
            "space.member_joined",
            "user.registered",
        ]
        result = load_handler("dispatch")({"Records": records}, LambdaContext("DispatchFunction"))
        assert result == {"batchItemFailures": []}
        received = rx.wait_for(2)
        assert len(sent_mail()) == 1

    verifier = StandardWebhook(outbound.secret or "")
    payloads = [verifier.verify(r.body, r.headers) for r in received]
    by_type = {p["event"]: p for p in payloads}
    assert sorted(by_type) == ["space.member_joined", "user.registered"]
    registered = by_type["user.registered"]["data"]
    assert registered["user"]["email"] == EMAIL and registered["user"]["id"] == answer["user_id"]
    assert registered["source"] == "incoming_webhook"
    assert "password_hash" not in json.dumps(payloads)
    joined = by_type["space.member_joined"]["data"]
    assert joined["space"] == {"id": space.id, "name": "Premium", "slug": "premium"}
    assert joined["user"]["id"] == answer["user_id"]


@pytest.mark.parametrize("token", ["", "nope", "A" * 42, "A" * 44, "A" * 42 + "!", "A" * 300])
def test_a_token_of_the_wrong_shape_is_refused_without_a_lookup(
    world: World, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    def no_lookup(*args: Any) -> None:
        raise AssertionError("a malformed token was looked up")

    monkeypatch.setattr(IncomingRepository, "by_token_hash", no_lookup)
    ctx = incoming_processor.InboundContext.from_services(world.services)
    result = incoming_processor.process(ctx, token, None, "203.0.113.9", b"email=a%40b.example", {})
    assert (result.status, result.reason, result.body()) == (
        404,
        "unknown_token",
        {"success": False, "message": "Not found."},
    )
