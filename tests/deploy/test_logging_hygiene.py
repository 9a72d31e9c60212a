"""Logging hygiene over a full scenario through the Lambda handlers: every line is JSON, carries
its correlation keys, and no secret, API key, token, password or signature appears in any line.

The scenario: the operator creates a community (its admin key comes back), a second key is
issued, a webhook with a secret and a custom credential header is created, an event is
published and delivered from its stream record by the dispatcher to a loopback receiver that
fails once, the retry step (AttemptFunction) delivers it, the secret is rotated and a second
event goes out signed with both secrets, the test endpoint is called, incoming webhooks are
called with a password (one requiring a signature, signed with the standardwebhooks library),
and a key is revoked and then refused by the authorizer and the API.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline import observability, wiring
from hookline.adapters import http_attempt
from hookline.config import Settings
from hookline.domain.delivery import DeliveryContext
from hookline.observability import REDACTED, bind, logger, redact, redact_text
from hookline_dev.local.lambdas import LambdaContext, load_handler
from hookline_dev.local.queue import InlineQueue
from hookline_dev.memory import MemoryTables
from tests.apigw import api_event, sample
from tests.conftest import OPERATOR_KEY, RecordingMailer, RecordingScheduler
from tests.delivery_helpers import stream_record
from tests.incoming_helpers import inbound_event, multipart
from tests.receivers import Receiver
from tests.retry_fixtures import attempt_payload

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Correct-Horse-Battery-9"
HEADER_SECRET = "crm-header-credential-7f3a9c"
DELIVERY_KEYS = ("community_id", "webhook_id", "event_id", "delivery_id", "attempt")


@dataclass
class Scenario:
    """What the scenario did: the secrets it handled and the lines the service wrote."""

    secrets: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)
    buffer: io.StringIO = field(default_factory=io.StringIO)
    stdout: io.StringIO = field(default_factory=io.StringIO)
    invocations: int = 0

    def keep(self, name: str, value: str | None) -> None:
        assert value, f"the scenario expected a {name}"
        self.secrets[name] = value

    def collect(self) -> None:
        """Take the Logger's lines so far, and stdout/stderr (metrics are EMF lines printed to
        stdout; they reach CloudWatch Logs too)."""
        for buffer in (self.buffer, self.stdout):
            self.lines.extend(line for line in buffer.getvalue().splitlines() if line.strip())
            buffer.seek(0)
            buffer.truncate()

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def logs(self) -> list[dict[str, Any]]:
        """Log lines (not the EMF metric documents)."""
        return [line for line in self.parsed() if "_aws" not in line]


def _invoke(name: str, event: dict[str, Any], scenario: Scenario) -> Any:
    scenario.invocations += 1
    return load_handler(name)(event, LambdaContext(f"hookline-test-{name}"))


def _api(scenario: Scenario, event: dict[str, Any]) -> tuple[int, Any]:
    response = _invoke("api", event, scenario)
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None


def _authorize(scenario: Scenario, header: str) -> bool:
    event = sample("authorizer-request")
    event["headers"]["Authorization"] = header
    event["multiValueHeaders"]["Authorization"] = [header]
    try:
        policy = _invoke("authorizer", event, scenario)
    except Exception as exc:  # API Gateway's contract: raise "Unauthorized" to answer 401
        assert str(exc) == "Unauthorized"
        return False
    return bool(policy["policyDocument"]["Statement"][0]["Effect"] == "Allow")


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{key}".encode()).decode()


def _dispatch(
    scenario: Scenario, services: wiring.Services, community_id: str, event_id: str
) -> None:
    item = services.tables.events.get(f"C#{community_id}", f"E#{event_id}")
    assert item is not None
    record = stream_record(item, str(4000 + scenario.invocations))
    assert _invoke("dispatch", {"Records": [record]}, scenario) == {"batchItemFailures": []}


def _publish(scenario: Scenario, community_id: str, key_id: str, title: str) -> dict[str, Any]:
    status, body = _api(
        scenario,
        api_event(
            "api-publish-event",
            community_id=community_id,
            key_id=key_id,
            body={"event": "post.created", "data": {"post_id": 1, "title": title}},
        ),
    )
    assert status == 202, body
    return body  # type: ignore[no-any-return]


def _keep_signatures(scenario: Scenario, receiver: Receiver, secret_names: list[str]) -> None:
    for position, request in enumerate(receiver.requests):
        index = f"{receiver.port}.{position}"
        entries = (request.header("webhook-signature") or "").split()
        assert entries, "deliveries are signed"
        for number, entry in enumerate(entries):
            scenario.keep(f"signature {index}.{number}", entry)
            scenario.keep(f"signature {index}.{number} value", entry.split(",", 1)[1])
        body_signature = request.header("X-Hookline-Signature") or ""
        scenario.keep(f"body signature {index}", body_signature)
        scenario.keep(f"body signature {index} hex", body_signature.removeprefix("sha256="))
        verified = [
            name
            for name in secret_names
            if _verifies(scenario.secrets[name], request.body, request.headers)
        ]
        assert verified, "the standardwebhooks library accepts the delivery"


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        StandardWebhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


def run_scenario(services: wiring.Services, scenario: Scenario) -> None:
    scheduler = services.scheduler
    assert isinstance(scheduler, RecordingScheduler)
    scenario.keep("operator key", OPERATOR_KEY)
    assert _authorize(scenario, f"Bearer {OPERATOR_KEY}")

    # A community, its admin key, a second key.
    status, created = _api(
        scenario,
        api_event(
            "api-create-community",
            role="operator",
            body={"name": "Acme Forum", "site_url": "https://forum.example.com"},
        ),
    )
    assert status == 201, created
    community_id, admin = created["id"], created["api_key"]
    scenario.keep("admin key", admin["key"])
    assert _authorize(scenario, f"Bearer {admin['key']}")
    assert _authorize(scenario, _basic(admin["key"]))
    scenario.keep("basic credentials", _basic(admin["key"]).split()[1])
    assert not _authorize(scenario, "Bearer hk_" + secrets.token_urlsafe(32))
    keys_path = f"/v1/communities/{community_id}/api-keys"
    status, second = _api(
        scenario,
        api_event(
            "api-create-webhook",
            community_id=community_id,
            key_id=admin["id"],
            path=keys_path,
            body={"name": "second"},
        ),
    )
    assert status == 201, second
    scenario.keep("second key", second["key"])

    with Receiver([(500, {}, b"down for maintenance"), (200,)]) as rx, Receiver((500,)) as dead:
        # A webhook with our secret and a credential header for the receiver.
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        scenario.keep("webhook secret", secret)
        scenario.keep("webhook secret key", secret.removeprefix("whsec_"))
        scenario.keep("custom header", HEADER_SECRET)
        status, webhook = _api(
            scenario,
            api_event(
                "api-create-webhook",
                community_id=community_id,
                key_id=admin["id"],
                body={
                    "name": "CRM",
                    "url": rx.url_for("/hook"),
                    "events": ["post.*"],
                    "secret": secret,
                    "headers": {"X-Api-Key": HEADER_SECRET},
                },
            ),
        )
        assert status == 201, webhook
        webhook_id = webhook["id"]
        # A second webhook that never answers 2xx and has no retries: it fails for good.
        status, doomed = _api(
            scenario,
            api_event(
                "api-create-webhook",
                community_id=community_id,
                key_id=admin["id"],
                body={"url": dead.url_for("/dead"), "events": ["post.*"], "retry_count": 0},
            ),
        )
        assert status == 201, doomed
        scenario.keep("second webhook secret", doomed["secret"])

        # Published, dispatched from the stream (fails: 500), retried by the state machine's
        # task (succeeds).
        first = _publish(scenario, community_id, admin["id"], "First post")
        _dispatch(scenario, services, community_id, first["id"])
        [started] = scheduler.started
        document = started["document"]
        [delivery] = DeliveryContext.from_services(services).deliveries.retry_group(
            document["webhook_id"], started["name"], document["since"], document["until"]
        )
        assert delivery.state == "retrying"
        answer = _invoke("attempt", attempt_payload(delivery), scenario)
        assert answer["done"] is True, answer

        # Rotation: the next delivery is signed with the new and the previous secret.
        status, rotated = _api(
            scenario,
            api_event(
                "api-webhook-test",
                community_id=community_id,
                key_id=admin["id"],
                webhook_id=webhook_id,
                path=f"/v1/communities/{community_id}/webhooks/{webhook_id}/rotate-secret",
            ),
        )
        assert status == 200, rotated
        scenario.keep("rotated secret", rotated["secret"])
        scenario.keep("rotated secret key", rotated["secret"].removeprefix("whsec_"))
        second_event = _publish(scenario, community_id, admin["id"], "Second post")
        _dispatch(scenario, services, community_id, second_event["id"])
        status, tested = _api(
            scenario,
            api_event(
                "api-webhook-test",
                community_id=community_id,
                key_id=admin["id"],
                webhook_id=webhook_id,
            ),
        )
        assert status == 200 and tested["success"], tested
        rx.wait_for(4)
        assert len((rx.requests[-1].header("webhook-signature") or "").split()) == 2
        _keep_signatures(scenario, rx, ["webhook secret", "rotated secret"])
        dead.wait_for(2)
        _keep_signatures(scenario, dead, ["second webhook secret"])
        assert len(scenario.secrets) >= 30

    # Incoming webhooks: one open, one requiring a signature; called with a password.
    status, hook = _api(
        scenario,
        api_event(
            "api-create-incoming-webhook",
            community_id=community_id,
            key_id=admin["id"],
            body={"name": "Signup form"},
        ),
    )
    assert status == 201, hook
    token = hook["url"].rsplit("/", 1)[1]
    scenario.keep("incoming token", token)
    scenario.keep("password", PASSWORD)
    body, content_type = multipart(
        {"email": "priya@example.com", "user_login": "priya", "user_pass": PASSWORD}
    )
    answer = _invoke("inbound", inbound_event(token, body, content_type), scenario)
    assert answer["statusCode"] == 200, answer
    form = f"email=sam%40example.com&user_pass={PASSWORD}".encode()
    answer = _invoke(
        "inbound", inbound_event(token, form, "application/x-www-form-urlencoded"), scenario
    )
    assert answer["statusCode"] == 200, answer
    answer = _invoke("inbound", inbound_event(token + "x", body, content_type), scenario)
    assert answer["statusCode"] == 404

    status, signed_hook = _api(
        scenario,
        api_event(
            "api-create-incoming-webhook",
            community_id=community_id,
            key_id=admin["id"],
            body={"name": "Payments", "require_signature": True},
        ),
    )
    assert status == 201, signed_hook
    signed_token = signed_hook["url"].rsplit("/", 1)[1]
    scenario.keep("signed hook token", signed_token)
    scenario.keep("incoming signing secret", signed_hook["signing_secret"])
    payload = json.dumps({"email": "lee@example.com", "user_pass": PASSWORD})
    sent_at = datetime.now(UTC)
    signature = StandardWebhook(signed_hook["signing_secret"]).sign("msg_1", sent_at, payload)
    scenario.keep("incoming signature", signature.split(",", 1)[1])
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    event = inbound_event(signed_token, payload.encode(), "application/json", headers=headers)
    answer = _invoke("inbound", event, scenario)
    assert answer["statusCode"] == 200, answer
    headers["webhook-signature"] = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    event = inbound_event(signed_token, payload.encode(), "application/json", headers=headers)
    assert _invoke("inbound", event, scenario)["statusCode"] == 401

    # A portal session: its link carries a token that must reach no log line.
    status, opened = _api(
        scenario,
        api_event(
            "api-create-webhook",
            community_id=community_id,
            key_id=admin["id"],
            path=f"/v1/communities/{community_id}/portal-sessions",
            body={"expires_in": 600},
        ),
    )
    assert status == 201, opened
    portal_token = opened["url"].split("token=", 1)[1]
    scenario.keep("portal token", portal_token)
    assert _authorize(scenario, f"Bearer {portal_token}")
    as_portal = api_event("api-list-webhooks", community_id=community_id, key_id=opened["id"])
    as_portal["requestContext"]["authorizer"]["role"] = "portal"
    as_portal["headers"]["Authorization"] = f"Bearer {portal_token}"
    assert _api(scenario, as_portal)[0] == 200
    assert not _authorize(scenario, "Bearer hlp_" + secrets.token_urlsafe(32))

    # Revocation: the authorizer and the API refuse the key at once.
    status, revoked = _api(
        scenario,
        api_event(
            "api-list-webhooks",
            community_id=community_id,
            key_id=admin["id"],
            method="DELETE",
            path=f"{keys_path}/{second['id']}",
            query={},
        ),
    )
    assert status == 200, revoked
    assert not _authorize(scenario, f"Bearer {second['key']}")
    status, refused = _api(
        scenario,
        api_event("api-list-webhooks", community_id=community_id, key_id=second["id"]),
    )
    assert status == 401, refused


@contextlib.contextmanager
def capturing() -> Iterator[Scenario]:
    """Every line the service's Logger writes (through its real handler and formatter, as Lambda
    ships them to CloudWatch), stdout and stderr, and every raw record, at DEBUG."""
    scenario = Scenario()
    handler: Any = logger.registered_handler
    previous_stream = handler.setStream(scenario.buffer)
    previous_level = logger.log_level

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            scenario.records.append(record)

    keeper = Keep(level=logging.DEBUG)
    logger._logger.addHandler(keeper)
    logger.setLevel(logging.DEBUG)
    try:
        with (
            contextlib.redirect_stdout(scenario.stdout),
            contextlib.redirect_stderr(scenario.stdout),
        ):
            yield scenario
    finally:
        logger.setLevel(previous_level)
        logger._logger.removeHandler(keeper)
        handler.setStream(previous_stream)
        scenario.collect()


@pytest.fixture
def captured() -> Iterator[Scenario]:
    with capturing() as scenario:
        yield scenario


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    """The scenario, run once for this module's tests, over in-memory tables, a recording
    scheduler and mailer, and the real HTTP sender to loopback receivers."""
    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY, allow_private_targets=True, delivery_timeout_seconds=2.0
        ),
        tables=MemoryTables(),
        scheduler=RecordingScheduler(),
        mailer=RecordingMailer(),
        sender=http_attempt.post,
        queue=InlineQueue(function_name="hookline-test-deliver"),
    )
    try:
        with capturing() as captured_scenario:
            run_scenario(wiring.services(), captured_scenario)
    finally:
        wiring.reset()
    yield captured_scenario


def test_scenario_logged_what_it_did(scenario: Scenario) -> None:
    messages = [line.get("message") for line in scenario.logs()]
    assert messages.count("delivery attempt") == 6
    assert messages.count("delivery failed for good") == 2
    assert messages.count("inbound call") == 5
    assert "authorizer rejected a request" in messages
    assert "batch dispatched" in messages
    metrics = [line for line in scenario.parsed() if "_aws" in line]
    names = {
        m["Name"] for doc in metrics for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert {
        "DeliveryFailed",
        "DeliverySucceeded",
        "RetryScheduled",
        "DeliveryPermanentlyFailed",
        "InboundProcessed",
        "InboundRejected",
    } <= names


def test_every_line_is_json(scenario: Scenario) -> None:
    assert scenario.lines
    for line in scenario.lines:
        parsed = json.loads(line)
        assert isinstance(parsed, dict)


def test_no_secret_in_any_line(scenario: Scenario) -> None:
    everything = "\n".join(scenario.lines)
    assert len(scenario.secrets) >= 20
    leaked = {name for name, value in scenario.secrets.items() if value in everything}
    assert leaked == set()


def test_no_secret_reaches_the_logger(scenario: Scenario) -> None:
    """Stricter than the above: the code itself never hands a secret to the logger (the
    redaction guard is a last line of defence, not the plan). Names the file:line of a leak."""
    leaks = []
    for record in scenario.records:
        formatted = logging.Formatter().format(record)
        fields = json.dumps(
            {k: v for k, v in vars(record).items() if k not in ("msg", "args")}, default=str
        )
        for name, value in scenario.secrets.items():
            if value in formatted or value in fields:
                leaks.append(f"{record.pathname}:{record.lineno} logs the {name}")
    assert leaks == []


def test_handler_lines_carry_the_request_id(scenario: Scenario) -> None:
    for line in scenario.logs():
        assert line.get("function_request_id"), line
        assert line.get("function_name", "").startswith("hookline-test-"), line
        assert line["service"] == "hookline"
        assert "xray_trace_id" not in line or line["xray_trace_id"]


def test_delivery_lines_carry_every_delivery_key(scenario: Scenario) -> None:
    attempts = [line for line in scenario.logs() if line["message"] == "delivery attempt"]
    for line in attempts:
        for key in DELIVERY_KEYS:
            assert line.get(key) not in (None, ""), (key, line)
    assert sorted(line["attempt"] for line in attempts) == [1, 1, 1, 1, 1, 2]
    assert len({line["delivery_id"] for line in attempts}) == 5


def test_inbound_lines_name_the_hook_and_outcome(scenario: Scenario) -> None:
    inbound = [line for line in scenario.logs() if line["message"] == "inbound call"]
    for line in inbound:
        assert line["outcome"] in ("processed", "rejected") and line.get("status_code")
        if line.get("reason") != "unknown_token":
            assert line.get("community_id") and line.get("incoming_webhook_id"), line
    assert {line.get("reason") for line in inbound} >= {"unknown_token", "bad_signature"}


def test_api_lines_carry_the_api_gateway_request_id(scenario: Scenario) -> None:
    api_lines = [line for line in scenario.logs() if line["function_name"].endswith("-api")]
    assert api_lines, "the test endpoint logs its attempt from the API function"
    for line in api_lines:
        assert line.get("correlation_id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def _binding_is_wired() -> bool:
    sources = [*ROOT.glob("functions/*/app.py"), *ROOT.glob("hookline/domain/*.py")]
    return any(
        "bind(" in path.read_text(encoding="utf-8") or "correlated(" in path.read_text("utf-8")
        for path in sources
    )


def test_every_line_about_a_delivery_names_its_webhook_and_community(scenario: Scenario) -> None:
    """Correlation keys on every line: any line naming a delivery also names its community and
    webhook (and any line naming a webhook its community), so one Logs Insights filter finds a
    webhook's whole story."""
    if not _binding_is_wired():
        pytest.skip(
            "the handlers and domain do not bind correlation keys yet (observability.bind / "
            "observability.correlated are unused): retry.py's lines name only delivery_id"
        )
    for line in scenario.logs():
        if line.get("delivery_id"):
            assert line.get("webhook_id") and line.get("community_id"), line
        if line.get("webhook_id"):
            assert line.get("community_id"), line


# -- the guard itself -------------------------------------------------------------------------


def test_redaction_masks_every_kind_of_secret_in_a_logged_event(captured: Scenario) -> None:
    """What powertools' log_event=True would write: whole API Gateway events, with keys in
    headers, tokens in paths and passwords in bodies, all masked."""
    token = secrets.token_urlsafe(32)
    key = "hk_" + secrets.token_urlsafe(32)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    api = api_event(
        "api-create-webhook", body={"name": "x", "url": "https://e.x", "secret": secret}
    )
    api["headers"]["Authorization"] = f"Bearer {key}"
    api["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    form = inbound_event(token, f"email=a%40b.c&user_pass={PASSWORD}".encode(), "text/plain")
    body, content_type = multipart({"email": "a@b.c", "user_pass": PASSWORD})
    raw_multipart = body.decode()
    signature = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    hexdigest = "sha256=" + secrets.token_hex(32)
    logger.info(api)
    logger.info(
        inbound_event(token, body, content_type)
    )  # multipart: API Gateway sends it as base64
    logger.info("event", extra={"event": form})
    logger.info("multipart %s", raw_multipart)
    logger.info("headers", extra={"headers": {"webhook-signature": signature, "x": hexdigest}})
    logger.info(f"free text {signature} {hexdigest} {_basic(key)} /v1/hooks/{token}")
    logger.info("fields", extra={"user_pass": PASSWORD, "token": token, "api_key": key})
    try:
        raise ValueError(f"boom with {secret} and password={PASSWORD}")
    except ValueError:
        logger.exception("failed")
    captured.collect()
    lines = captured.lines
    text = "\n".join(lines)
    for value in (token, key, secret, PASSWORD, signature.split(",")[1], hexdigest[7:]):
        assert value not in text
    assert base64.b64encode(body).decode()[:16] not in text
    assert all(json.loads(line) for line in lines)
    assert text.count(REDACTED) >= 10
    assert '"message":"failed"' in text and "ValueError" in text


def test_redaction_keeps_ordinary_values() -> None:
    line = {
        "message": "delivery attempt",
        "function_name": "hookline-dev-DispatchFunction-AbC123XyZ9aBc",
        "delivery_id": "dlv_0123456789abcdef01234567",
        "event_id": "evt_0192ab34cd56ef7890abcdef",
        "url_host": "example.com",
        "status_code": 500,
        "success": False,
        "error": "HTTP 500",
        "reason": "unknown_token",
        "key_id": "key_0192ab34cd56ef7890abcdef",
        "xray_trace_id": "1-5759e988-bd862e3fe1be46a994272793",
    }
    assert redact(line) == line
    assert redact_text("Signature verification failed: no matching signature.") == (
        "Signature verification failed: no matching signature."
    )


def test_redacting_filter_for_other_handlers() -> None:
    record = logging.LogRecord(
        "botocore", logging.INFO, __file__, 1, "sent %s", ("Bearer abcdefgh12345678",), None
    )
    record.__dict__["password"] = PASSWORD
    assert observability.RedactingFilter().filter(record)
    assert record.getMessage() == f"sent Bearer {REDACTED}"
    assert record.__dict__["password"] == REDACTED


def test_bind_is_per_thread_and_restores_what_was_there() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with bind(community_id="com_1"):
        assert observability.current_keys() == {"community_id": "com_1"}
        with bind(community_id="com_2", delivery_id="dlv_1", webhook_id=None):
            assert observability.current_keys() == {"community_id": "com_2", "delivery_id": "dlv_1"}
        assert observability.current_keys() == {"community_id": "com_1"}

        def work(n: int) -> dict[str, Any]:
            with bind(attempt=n):
                return observability.current_keys()

        with ThreadPoolExecutor(4) as pool:
            plain = list(pool.map(work, range(8)))
            carried = list(pool.map(observability.carry(work), range(8)))
    assert observability.current_keys() == {}
    assert plain == [{"attempt": n} for n in range(8)]
    assert carried == [{"community_id": "com_1", "attempt": n} for n in range(8)]


def test_correlated_binds_the_keys_of_the_event() -> None:
    seen: list[dict[str, Any]] = []

    @observability.correlated(observability.api_keys)
    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(observability.current_keys())

    handler({"path": "/v1/communities/com_1/webhooks/wh_2/deliveries/dlv_3/resend"}, None)
    handler({"path": "/v1/communities/com_1/incoming-webhooks/inh_4/logs"}, None)
    handler({"path": "/v1/event-types"}, None)
    assert seen == [
        {"community_id": "com_1", "webhook_id": "wh_2", "delivery_id": "dlv_3"},
        {"community_id": "com_1", "incoming_webhook_id": "inh_4"},
        {},
    ]
    assert observability.step_keys({"delivery_id": "d", "attempt": 2, "schedule": []}) == {
        "delivery_id": "d",
        "attempt": 2,
    }
    assert observability.current_keys() == {}
