"""Bad input everywhere gets a clear 4xx in our error shape, naming the field, never a 5xx.

Through the real handlers (functions/api/app.py and functions/inbound/app.py) over DynamoDB
tables built from template.yaml in moto, so storage refuses what DynamoDB refuses; and, for a
few, over real HTTP through the local stack (API Gateway emulation included).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hookline import wiring
from hookline.config import Settings
from hookline.domain.repositories import WebhookRepository
from hookline_dev.local.lambdas import LambdaContext, load_handler
from tests.apigw import api_event
from tests.conftest import OPERATOR_KEY
from tests.incoming_helpers import World, aws_services, inbound_event, multipart
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import Tenant, make_tenant

KB = 1024


@pytest.fixture(scope="class")
def tables() -> Iterator[World]:
    """One community over moto DynamoDB for the class (moto stops before the local stack
    starts, so the two never share the process)."""
    wiring.configure(settings=Settings(allow_private_targets=False, operator_key=OPERATOR_KEY))
    with aws_services(wiring.services(), mail=False, tables=True) as services:
        yield World.create(services)
    wiring.reset()


@pytest.fixture
def world(tables: World, monkeypatch: pytest.MonkeyPatch) -> World:
    from hookline.domain import directory

    monkeypatch.setattr(directory, "SCRYPT_PARAMS", (2**10, 8, 1))
    wiring.configure(settings=tables.services.settings, tables=tables.services.tables)
    return tables


def api(
    world: World,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: str | bytes | None = None,
    content_type: str | None = "application/json",
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Call ApiFunction as API Gateway would; bytes that are not UTF-8 arrive base64-encoded
    (isBase64Encoded), as API Gateway passes binary bodies."""
    event = api_event(
        "api-create-webhook",
        community_id=world.community.id,
        key_id=world.key.id,
        method=method,
        path=f"/v1/communities/{world.community.id}{path}",
        query=query,
        body=None if body is None else body,
    )
    if raw is not None:
        if isinstance(raw, bytes):
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            event["body"] = raw
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    response = load_handler("api")(event, LambdaContext("ApiFunction"))
    text = response.get("body") or ""
    return response["statusCode"], json.loads(text) if text else None


def assert_clear_4xx(
    answer: tuple[int, Any], status: int | None = None, *, field: str | None = None
) -> dict[str, Any]:
    code, body = answer
    assert 400 <= code < 500, answer
    if status is not None:
        assert code == status, answer
    assert set(body) == {"code", "message", "data"}, body
    assert body["data"]["status"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 5
    if field is not None:
        assert str(body["data"].get("field", "")).startswith(field), body
    return body  # type: ignore[no-any-return]


def _webhook(**fields: Any) -> dict[str, Any]:
    return {"url": "https://hooks.example.com/in", "events": ["post.*"], **fields}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_multipart(depth: int) -> tuple[bytes, str]:
    """A form whose one part is multipart/mixed, nested ``depth`` levels deep (1,100 fit 64 KB)."""
    body = b'--0\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.example\r\n--0--\r\n'
    for level in range(1, depth + 1):
        head = f"--{level}\r\nContent-Type:multipart/mixed;boundary={level - 1}\r\n\r\n"
        body = head.encode() + body  # unclosed, as a parser tolerates
    return body, f"multipart/form-data; boundary={depth}"


def many_nested_fields(count: int) -> tuple[bytes, str]:
    """One top-level part holding ``count`` fields in a nested multipart/mixed."""
    inner = b"".join(
        f'--in\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n'.encode()
        for i in range(count)
    )
    body = (
        b'--out\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.example\r\n'
        b"--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n" + inner + b"--in--\r\n"
        b"--out--\r\n"
    )
    return body, "multipart/form-data; boundary=out"


def _inbound(token: str, body: bytes, content_type: str | None = "application/json") -> Any:
    event = inbound_event(token, body, content_type)
    response = load_handler("inbound")(event, LambdaContext("InboundFunction"))
    return response["statusCode"], json.loads(response["body"])


UNSTORABLE = [
    '{"event": "post.created", "data": {"n": NaN}}',
    '{"event": "post.created", "data": {"n": Infinity}}',
    '{"event": "post.created", "data": {"n": -Infinity}}',
    '{"event": "post.created", "data": {"n": 1e400}}',
    '{"event": "post.created", "data": {"n": 123456789012345678901234567890123456789012}}',
    '{"event": "post.created", "data": {"s": "\\ud800"}}',
    '{"event": "post.created", "data": {"": "empty key"}}',
    '{"event": "post.created", "actor": {"n": NaN}}',
]


@pytest.mark.usefixtures("tables")
class TestThroughTheHandlers:
    """ApiFunction and InboundFunction called in-process, over moto DynamoDB."""

    # -- oversized bodies -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/events", {"event": "post.created", "data": {"text": "x" * (300 * KB)}}),
            # under 256 K characters, over 256 KB once UTF-8 encoded
            ("POST", "/events", {"event": "post.created", "data": {"text": "\u20ac" * (100 * KB)}}),
            ("POST", "/webhooks", _webhook(description="d" * (300 * KB))),
            ("POST", "/spaces", {"name": "n" * (300 * KB)}),
        ],
    )
    def test_oversized_bodies_get_413(
        self, world: World, method: str, path: str, body: Any
    ) -> None:
        raw = json.dumps(body, ensure_ascii=False)
        found = assert_clear_4xx(api(world, method, path, raw=raw), 413)
        assert found["code"] == "payload_too_large"

    def test_an_oversized_incoming_call_gets_413(self, world: World) -> None:
        _, token = world.incoming()
        status, body = _inbound(
            token, json.dumps({"email": "a@b.example", "x": "y" * 70 * KB}).encode()
        )
        assert status == 413 and body["success"] is False

    # -- wrong content types and encodings ---------------------------------------------------------

    @pytest.mark.parametrize(
        "content_type",
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "text/html; charset=utf-8",
            "image/png",
        ],
    )
    def test_wrong_content_types_get_415(self, world: World, content_type: str) -> None:
        found = assert_clear_4xx(
            api(world, "POST", "/webhooks", raw=json.dumps(_webhook()), content_type=content_type),
            415,
        )
        assert found["code"] == "unsupported_media_type"

    def test_json_with_a_charset_parameter_is_accepted(self, world: World) -> None:
        raw = json.dumps(_webhook())
        for content_type in (
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            None,
        ):
            assert api(world, "POST", "/webhooks", raw=raw, content_type=content_type)[0] == 201

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"url": "https://hooks.example.com/\xff", "events": ["post.*"]}',
            b'{"event": "post.created", "data": {"text": "\xc3\x28"}}',
            b"\xfe\xff\x00{",
        ],
    )
    def test_invalid_utf8_gets_a_4xx(self, world: World, raw: bytes) -> None:
        assert_clear_4xx(api(world, "POST", "/events", raw=raw))

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "{",
            '{"url": "https://hooks.example.com/in", "events": ["post.*"]',
            "\ufeff{}",
            '{"a": 1} trailing',
            "null",
            "[]",
            '"a string"',
            "12",
            "true",
        ],
    )
    def test_malformed_or_non_object_json_gets_400(self, world: World, raw: str) -> None:
        answer = api(world, "POST", "/webhooks", raw=raw)
        assert_clear_4xx(answer, 400, field="body")

    # -- deeply nested JSON -----------------------------------------------------------------------

    @pytest.mark.parametrize(
        "raw", ["[" * 100_000 + "]" * 100_000, '{"a":' * 40_000 + "1" + "}" * 40_000]
    )
    def test_json_nested_past_the_parser_gets_400(self, world: World, raw: str) -> None:
        assert_clear_4xx(api(world, "POST", "/events", raw=raw), 400, field="body")

    @pytest.mark.parametrize("depth", [33, 500, 900])
    def test_event_data_nested_deeper_than_storage_allows_gets_400(
        self, world: World, depth: int
    ) -> None:
        body = {"event": "post.created", "data": _nested(depth)}
        assert_clear_4xx(api(world, "POST", "/events", raw=json.dumps(body)), 400, field="data")

    def test_an_incoming_call_nested_too_deeply_gets_400(self, world: World) -> None:
        _, token = world.incoming()
        status, body = _inbound(token, b"[" * 30_000 + b"]" * 30_000)
        assert status == 400 and body["success"] is False

    @pytest.mark.parametrize(
        "shape", [nested_multipart(1100), nested_multipart(1), many_nested_fields(150)]
    )
    def test_nested_multipart_gets_400(self, world: World, shape: tuple[bytes, str]) -> None:
        hook, token = world.incoming()
        body, content_type = shape
        assert len(body) < 64 * KB
        status, answer = _inbound(token, body, content_type)
        assert status == 400, answer
        assert answer == {
            "success": False,
            "message": "Nested multipart parts are not supported; send flat form fields.",
        }
        assert world.directory().find_by_email("a@b.example") is None
        assert world.logs(hook.id)[0].reason == "invalid_body"

    # -- values storage cannot hold ----------------------------------------------------------------

    @pytest.mark.parametrize("raw", UNSTORABLE)
    def test_event_data_storage_cannot_hold_gets_400(self, world: World, raw: str) -> None:
        field = "actor" if "actor" in raw else "data"
        assert_clear_4xx(api(world, "POST", "/events", raw=raw), 400, field=field)

    @pytest.mark.parametrize(
        "body",
        [
            _webhook(name="\ud800"),
            {"name": "\ud800 lounge"},
        ],
    )
    def test_lone_surrogates_in_named_fields_get_400(
        self, world: World, body: dict[str, Any]
    ) -> None:
        path = "/webhooks" if "url" in body else "/spaces"
        raw = json.dumps(body)  # ensure_ascii: the JSON text carries the escape \ud800
        assert_clear_4xx(api(world, "POST", path, raw=raw), 400, field="name")

    # -- huge arrays and wrong types ---------------------------------------------------------------

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (_webhook(events=["post.created"] * 10_000), "events"),
            (_webhook(events=[f"post.{i}" for i in range(5_000)]), "events"),
            (_webhook(events=["x" * 5_000]), "events"),
            (_webhook(events=[]), "events"),
            (_webhook(events="post.created"), "events"),
            (_webhook(events=[123]), "events"),
            (_webhook(events=[None]), "events"),
            (_webhook(events=[["post.*"]]), "events"),
            (_webhook(events=["no.such_type"]), "events"),
            (_webhook(url=123), "url"),
            (_webhook(url=["https://hooks.example.com"]), "url"),
            (_webhook(url=None, events=["*"]) | {"url": None}, "url"),
            (_webhook(is_active="yes"), "is_active"),
            (_webhook(retry_count=-1), "retry_count"),
            (_webhook(retry_count=10**12), "retry_count"),
            (_webhook(retry_count="many"), "retry_count"),
            (_webhook(format="xml"), "format"),
            (_webhook(headers=["X-A: 1"]), "headers"),
            (_webhook(headers="X-A: 1"), "headers"),
            (_webhook(secret=12345678), "secret"),
            (_webhook(secret="short"), "secret"),
            (_webhook(unknown_field=1), "unknown_field"),
        ],
    )
    def test_wrong_shapes_and_huge_arrays_name_the_field(
        self, world: World, body: dict[str, Any], field: str
    ) -> None:
        assert_clear_4xx(api(world, "POST", "/webhooks", raw=json.dumps(body)), 400, field=field)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "hook", "add_spaces": [f"sp_{i}" for i in range(10_000)]}, "add_spaces"),
            ({"name": "hook", "add_courses": "crs_1"}, "add_courses"),
            ({"name": "hook", "allowed_ips": ["not-an-ip"]}, "allowed_ips"),
            ({"name": "hook", "allowed_ips": ["10.0.0.0/8"] * 10_000}, "allowed_ips"),
            ({"name": "hook", "send_welcome_email": "true"}, "send_welcome_email"),
            ({"name": "hook", "max_body_bytes": 10**12}, "max_body_bytes"),
            ({"name": ["hook"]}, "name"),
            ({"name": ""}, "name"),
        ],
    )
    def test_incoming_webhook_bodies_name_the_field(
        self, world: World, body: dict[str, Any], field: str
    ) -> None:
        answer = api(world, "POST", "/incoming-webhooks", raw=json.dumps(body))
        assert_clear_4xx(answer, 400, field=field)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"event": "post.created", "data": []}, "data"),
            ({"event": "post.created", "data": "text"}, "data"),
            ({"event": "post.created", "actor": "someone"}, "actor"),
            ({"event": "no.such_event"}, "event"),
            ({"event": 12}, "event"),
            ({"event": ["post.created"] * 10_000}, "event"),
            ({"event": "post.created", "id": "has spaces"}, "id"),
            ({"event": "post.created", "id": "x" * 500}, "id"),
            ({"event": "delivery.failed"}, "event"),
            ({"data": {}}, "event"),
        ],
    )
    def test_publish_bodies_name_the_field(
        self, world: World, body: dict[str, Any], field: str
    ) -> None:
        assert_clear_4xx(api(world, "POST", "/events", raw=json.dumps(body)), 400, field=field)

    # -- header injection in custom headers --------------------------------------------------------

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-Evil": "a\r\nX-Injected: yes"},
            {"X-Evil": "a\nX-Injected: yes"},
            {"X-Evil": "a\rX-Injected: yes"},
            {"X-Evil": "a\r\n\r\nGET / HTTP/1.1"},
            {"X-Evil": "nul\u0000byte"},
            {"X-Evil": "bell\u0007"},
            {"X-Evil": "del\u007f"},
            {"X-Evil": "not latin-1 \u2713"},
            {"X-Evil": "line\u2028separator"},
            {"X-Evil\r\nX-Injected": "yes"},
            {"X-Evil: yes\r\nX-More": "1"},
            {"X Evil": "space in name"},
            {"X-\u00dcnicode": "name"},
            {"": "empty name"},
            {"X-Long": "v" * 5000},
            {"Host": "169.254.169.254"},
            {"host": "lowercase too"},
            {"Content-Length": "0"},
            {"Transfer-Encoding": "chunked"},
            {"webhook-signature": "v1,forged"},
            {"X-Hookline-Signature": "sha256=forged"},
            {"x-hookline-event": "member.banned"},
            {"X-Hookline-Attempt": "1"},  # every X-Hookline-* name is Hookline's
            {"X-Hookline-Anything": "x"},
            {"Upgrade": "websocket"},
            {"TE": "trailers"},
            {"Keep-Alive": "timeout=5"},
            {"Trailer": "X-Checksum"},
            {"Expect": "100-continue"},
            {"Content-Encoding": "gzip"},
            {"Proxy-Authorization": "Basic eDp5"},
            {"Connection": "close"},
            {"X-Evil": "next line\x85"},
            {"X-Evil": "nbsp\u00a0"},
            {"X-Evil": "caf\u00e9"},
            {"X-Evil": 123},
            {"X-Evil": None},
            {"X-Evil": ["a", "b"]},
            {f"X-H{i}": "v" for i in range(21)},
        ],
    )
    def test_header_injection_in_custom_headers_is_refused(
        self, world: World, headers: dict[str, Any]
    ) -> None:
        answer = api(world, "POST", "/webhooks", raw=json.dumps(_webhook(headers=headers)))
        assert_clear_4xx(answer, 400, field="headers")

    def test_header_injection_on_update_is_refused_and_leaves_headers_alone(
        self, world: World
    ) -> None:
        status, created = api(
            world, "POST", "/webhooks", raw=json.dumps(_webhook(headers={"X-A": "1"}))
        )
        assert status == 201
        for method in ("PATCH", "PUT"):
            answer = api(
                world,
                method,
                f"/webhooks/{created['id']}",
                raw=json.dumps({"headers": {"X-A": "1\r\nX-Injected: yes"}}),
            )
            assert_clear_4xx(answer, 400, field="headers")
        status, current = api(world, "GET", f"/webhooks/{created['id']}")
        assert status == 200 and current["headers"] == {"X-A": "********"}
        stored = WebhookRepository(world.services.tables.webhooks).get(
            world.community.id, created["id"]
        )
        assert stored.headers == {"X-A": "1"}

    def test_legitimate_header_values_are_kept_and_never_shown(self, world: World) -> None:
        headers = {"X-Api-Key": "k-123", "X-Note": "cafe\tok", "Authorization": "Bearer abc"}
        status, created = api(world, "POST", "/webhooks", raw=json.dumps(_webhook(headers=headers)))
        assert status == 201 and created["headers"] == dict.fromkeys(headers, "********")
        stored = WebhookRepository(world.services.tables.webhooks).get(
            world.community.id, created["id"]
        )
        assert stored.headers == headers

    def test_a_read_back_mask_keeps_the_stored_value(self, world: World) -> None:
        headers = {"X-Api-Key": "crm-key-123", "X-Old": "gone"}
        status, created = api(world, "POST", "/webhooks", raw=json.dumps(_webhook(headers=headers)))
        assert status == 201
        status, fetched = api(world, "GET", f"/webhooks/{created['id']}")
        sent_back = {"X-Api-Key": fetched["headers"]["X-Api-Key"], "X-New": "v"}
        status, updated = api(
            world,
            "PUT",
            f"/webhooks/{created['id']}",
            raw=json.dumps({"headers": sent_back, "secret": fetched["secret"]}),
        )
        assert status == 200, updated
        stored = WebhookRepository(world.services.tables.webhooks).get(
            world.community.id, created["id"]
        )
        assert stored.headers == {"X-Api-Key": "crm-key-123", "X-New": "v"}
        assert stored.secret == created["secret"]
        # a mask for a header that has no stored value is refused
        answer = api(
            world, "POST", "/webhooks", raw=json.dumps(_webhook(headers={"X-B": "********"}))
        )
        assert_clear_4xx(answer, 400, field="headers")

    # -- query and path parameters -----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"per_page": "0"}, "per_page"),
            ({"per_page": "51"}, "per_page"),
            ({"per_page": "ten"}, "per_page"),
            ({"page": "0"}, "page"),
            ({"page": "-1"}, "page"),
            ({"page": "99999999999999999999999"}, "page"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"cursor": "x" * 5000}, "cursor"),
        ],
    )
    def test_bad_list_parameters_name_the_field(
        self, world: World, query: dict[str, str], field: str
    ) -> None:
        assert_clear_4xx(api(world, "GET", "/webhooks", query=query), 400, field=field)

    def test_bad_filters_name_the_field(self, world: World) -> None:
        status, created = api(world, "POST", "/webhooks", raw=json.dumps(_webhook()))
        assert status == 201
        base = f"/webhooks/{created['id']}"
        assert_clear_4xx(
            api(world, "GET", base + "/logs", query={"status": "maybe"}), 400, field="status"
        )
        assert_clear_4xx(api(world, "GET", base + "/logs", query={"event": ""}), 400, field="event")
        assert_clear_4xx(
            api(world, "GET", base + "/deliveries", query={"state": "lost"}), 400, field="state"
        )
        assert_clear_4xx(
            api(world, "POST", base + "/recover", raw=json.dumps({"since": "yesterday"})),
            400,
            field="since",
        )
        assert_clear_4xx(
            api(world, "GET", "/members", query={"email": "x" * 400}), 400, field="email"
        )
        assert_clear_4xx(
            api(world, "GET", "/members", query={"email": "no-at-sign"}), 400, field="email"
        )

    @pytest.mark.parametrize(
        "resource",
        ["x" * 5000, "%00", "..%2F..%2Fetc", "\u00e9\u00e8", "wh_'; DROP TABLE--", "%ff%fe"],
    )
    def test_odd_ids_in_paths_are_404(self, world: World, resource: str) -> None:
        for path in (f"/webhooks/{resource}", f"/spaces/{resource}", f"/members/{resource}"):
            assert_clear_4xx(api(world, "GET", path), 404)

    def test_a_wrong_method_is_405(self, world: World) -> None:
        assert_clear_4xx(api(world, "DELETE", "/events"), 405)

    # -- incoming webhooks: non-string emails and friends ------------------------------------------

    @pytest.mark.parametrize(
        ("payload", "says"),
        [
            ({"email": 123}, "email must be a string"),
            ({"email": ["a@b.example"]}, "email must be a string"),
            ({"email": {"$ne": ""}}, "email must be a string"),
            ({"email": True}, "email must be a string"),
            ({"email": 1.5}, "email must be a string"),
            ({"email": None}, "email is required"),
            ({}, "email is required"),
            ({"email": ""}, "email"),
            ({"email": "not-an-email"}, "email is not a valid email address"),
            (
                {"email": "a@b.example\r\nBcc: victim@c.example"},
                "email is not a valid email address",
            ),
            ({"email": "a@b.example", "first_name": 123}, "first_name must be a string"),
            ({"email": "a@b.example", "user_pass": ["pw"]}, "user_pass must be a string"),
            ({"email": "a@b.example", "user_login": {"x": 1}}, "user_login must be a string"),
        ],
    )
    def test_non_string_and_malformed_emails_get_400(
        self, world: World, payload: dict[str, Any], says: str
    ) -> None:
        _, token = world.incoming()
        status, body = _inbound(token, json.dumps(payload).encode())
        assert status == 400, body
        assert body["success"] is False and says in body["message"]
        assert "user_id" not in body

    @pytest.mark.parametrize(
        ("body", "content_type", "status"),
        [
            (b"[]", "application/json", 400),
            (b"{", "application/json", 400),
            (b'{"email": NaN}', "application/json", 400),
            (b"email=%ff%fe%40b.example", "application/x-www-form-urlencoded", 400),
            (b"email=a@b.example", "text/plain", 415),
            (b"email=a@b.example", None, 415),
            (b"garbage", "multipart/form-data; boundary=zz", 400),
            (b"garbage", "multipart/form-data", 400),
        ],
    )
    def test_broken_incoming_bodies_get_4xx(
        self, world: World, body: bytes, content_type: str | None, status: int
    ) -> None:
        _, token = world.incoming()
        answer = _inbound(token, body, content_type)
        assert answer[0] == status and answer[1]["success"] is False, answer

    def test_invalid_utf8_in_a_multipart_field_gets_400(self, world: World) -> None:
        _, token = world.incoming()
        body, content_type = multipart({"email": "a@b.example"})
        event = inbound_event(
            token, body.replace(b"a@b.example", b"\xff\xfe@b.example"), content_type
        )
        response = load_handler("inbound")(event, LambdaContext("InboundFunction"))
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["success"] is False

    def test_a_lone_surrogate_in_an_incoming_name_gets_400(self, world: World) -> None:
        _, token = world.incoming()
        status, body = _inbound(token, b'{"email": "s@b.example", "first_name": "\\ud800"}')
        assert status == 400 and body["success"] is False


# -- over real HTTP, through the local stack ---------------------------------------------------


@pytest.fixture(scope="module")
def tenant(local_stack: LocalStackHandle) -> Tenant:  # noqa: F811
    return make_tenant(local_stack, "badinput")


def _http(tenant: Tenant, path: str, data: bytes, content_type: str, method: str = "POST") -> Any:
    return tenant.call(method, path, data=data, headers={"Content-Type": content_type})


def _assert_http_4xx(response: requests.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert body["data"]["status"] == response.status_code
    return body  # type: ignore[no-any-return]


def test_http_oversized_body_gets_our_413(tenant: Tenant) -> None:
    body = json.dumps({"event": "post.created", "data": {"text": "x" * 300 * KB}}).encode()
    found = _assert_http_4xx(_http(tenant, "/events", body, "application/json"), 413)
    assert found["code"] == "payload_too_large"


def test_http_wrong_content_type_gets_415(tenant: Tenant) -> None:
    response = _http(tenant, "/webhooks", json.dumps(_webhook()).encode(), "text/plain")
    assert _assert_http_4xx(response, 415)["code"] == "unsupported_media_type"


def test_http_deep_nesting_gets_400(tenant: Tenant) -> None:
    response = _http(tenant, "/events", b"[" * 100_000 + b"]" * 100_000, "application/json")
    assert _assert_http_4xx(response, 400)["data"]["field"] == "body"


def test_http_deeply_nested_multipart_gets_400(tenant: Tenant) -> None:
    body, content_type = nested_multipart(1100)
    response = requests.post(
        tenant.stack.url(f"/v1/hooks/{tenant.token}"),
        data=body,
        headers={"Content-Type": content_type},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert "Nested multipart" in response.json()["message"]


def test_http_invalid_utf8_never_gets_a_5xx(tenant: Tenant) -> None:
    # API Gateway turns invalid UTF-8 in a text body into U+FFFD before the function sees it.
    response = _http(tenant, "/spaces", b'{"name": "caf\xe9 \xff lounge"}', "application/json")
    assert response.status_code < 500, response.text
    if response.status_code < 300:
        assert response.json()["name"] == "caf\ufffd \ufffd lounge"


def test_http_header_injection_gets_400(tenant: Tenant) -> None:
    body = json.dumps(_webhook(headers={"X-Evil": "1\r\nX-Injected: yes"})).encode()
    found = _assert_http_4xx(_http(tenant, "/webhooks", body, "application/json"), 400)
    assert found["data"]["field"] == "headers"


def test_http_non_string_email_on_the_incoming_endpoint(tenant: Tenant) -> None:
    response = requests.post(
        tenant.stack.url(f"/v1/hooks/{tenant.token}"), json={"email": 42}, timeout=10
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "email must be a string."}
