"""template.yaml against abuse and for least privilege (issue 12): per-client limits (WAF,
throttling, reserved concurrency) and what the functions holding the communities table (with its
API-key hash records) may do there - checked against what their code really does."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline import ids, wiring
from hookline.domain import communities, incoming_signature, portal
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Unauthorized
from hookline.receiver import SignedMessage
from hookline_dev import template as tpl
from tests.incoming_helpers import World, post, post_form

ACTIONS = {
    "get": "dynamodb:GetItem",
    "put": "dynamodb:PutItem",
    "update": "dynamodb:UpdateItem",
    "delete": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "batch_get": "dynamodb:BatchGetItem",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return tpl.load_template()


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][name]["Properties"]
    return props


def _statements_on(template: dict[str, Any], function: str, table: str) -> list[dict[str, Any]]:
    found = []
    for policy in _function(template, function)["Policies"]:
        for statement in (policy.get("Statement") or []) if isinstance(policy, dict) else []:
            if statement.get("Resource") == {"Fn::GetAtt": [table, "Arn"]}:
                found.append(statement)
    return found


def _sam_policies_on(template: dict[str, Any], function: str, table: str) -> list[str]:
    return [
        kind
        for policy in _function(template, function)["Policies"]
        if isinstance(policy, dict)
        for kind, args in policy.items()
        if kind.startswith("DynamoDB") and args == {"TableName": {"Ref": table}}
    ]


def _allowed(statements: list[dict[str, Any]], action: str, partition: str) -> bool:
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        leading = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        if action in actions and any(fnmatch.fnmatchcase(partition, p) for p in leading):
            return True
    return False


# -- per-client limits ------------------------------------------------------------------------


def test_a_waf_web_acl_limits_each_client_on_the_stage(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["WafRateLimitPerIp"]["Default"] == "1000"
    assert re.fullmatch(params["WafRateLimitPerIp"]["AllowedPattern"], "0")
    assert not re.fullmatch(params["WafRateLimitPerIp"]["AllowedPattern"], "5")
    acl = template["Resources"]["ApiWebAcl"]
    association = template["Resources"]["ApiWebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "HasWaf"
    assert template["Conditions"]["HasWaf"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimitPerIp"}, "0"]}]
    }
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL" and props["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    per_ip = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert per_ip == {
        "AggregateKeyType": "IP",
        "Limit": {"Ref": "WafRateLimitPerIp"},
        "EvaluationWindowSec": 300,
    }
    per_key = rules["RateLimitPerApiKey"]["Statement"]["RateBasedStatement"]
    assert per_key["AggregateKeyType"] == "CUSTOM_KEYS"
    assert per_key["CustomKeys"][0]["Header"]["Name"] == "authorization"
    for rule in rules.values():
        response = rule["Action"]["Block"]["CustomResponse"]
        body = json.loads(
            props["CustomResponseBodies"][response["CustomResponseBodyKey"]]["Content"]
        )
        assert response["ResponseCode"] in (404, 429)
        if response["ResponseCode"] == 429:
            assert body["code"] == "rate_limited" and body["data"] == {"status": 429}
        assert rule["VisibilityConfig"]["SampledRequestsEnabled"] is False  # URLs are credentials
    arn = association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert arn.endswith("::/restapis/${HooklineApi}/stages/${HooklineApi.Stage}")
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}


def test_the_waf_refuses_exactly_the_hook_paths_no_token_can_have(template: dict[str, Any]) -> None:
    rules = {r["Name"]: r for r in template["Resources"]["ApiWebAcl"]["Properties"]["Rules"]}
    matchers = rules["MalformedHookToken"]["Statement"]["AndStatement"]["Statements"]
    assert matchers[0]["ByteMatchStatement"]["SearchString"] == "/v1/hooks/"
    regex = matchers[1]["NotStatement"]["Statement"]["RegexMatchStatement"]["RegexString"]
    assert regex == f"/v1/hooks/{ids.TOKEN_PATTERN}$"

    def blocked(path: str) -> bool:
        return "/v1/hooks/" in path and re.search(regex, path) is None

    for _ in range(50):
        token = ids.new_token()
        assert not blocked(f"/dev/v1/hooks/{token}") and ids.is_token_shaped(token)
    for path in ("/dev/v1/hooks/nope", "/dev/v1/hooks/" + "A" * 44, "/dev/v1/hooks/" + "%2e" * 15):
        assert blocked(path)
    assert not blocked("/dev/v1/communities/com_1/webhooks")


def test_the_inbound_function_has_reserved_concurrency(template: dict[str, Any]) -> None:
    assert template["Parameters"]["InboundReservedConcurrency"]["Default"] == 20
    assert _function(template, "InboundFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasInboundReservedConcurrency",
            {"Ref": "InboundReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_the_management_api_is_throttled_too(template: dict[str, Any]) -> None:
    settings = template["Resources"]["HooklineApi"]["Properties"]["MethodSettings"]
    everything = next(s for s in settings if s["ResourcePath"] == "/*")
    assert everything["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}
    assert everything["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurst"}
    hooks = next(s for s in settings if s["ResourcePath"] == "/~1v1~1hooks~1{token}")
    assert hooks["ThrottlingRateLimit"] == {"Ref": "InboundThrottleRate"}


# -- least privilege --------------------------------------------------------------------------


def test_only_the_api_function_holds_the_idempotency_table(template: dict[str, Any]) -> None:
    holders = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        and _sam_policies_on(template, name, "IdempotencyTable")
    ]
    assert holders == ["ApiFunction"]


@pytest.mark.parametrize("function", ["InboundFunction", "AuthorizerFunction"])
def test_no_broad_policy_on_the_communities_table(template: dict[str, Any], function: str) -> None:
    assert _sam_policies_on(template, function, "CommunitiesTable") == []
    statements = _statements_on(template, function, "CommunitiesTable")
    assert statements
    for statement in statements:
        assert set(statement["Condition"]) == {"ForAllValues:StringLike"}
    # neither may write an API key's hash record (mint a key) or a community's records
    for action in set(ACTIONS.values()) - {"dynamodb:GetItem"}:
        assert not _allowed(statements, action, "KEYHASH#" + "0" * 64)
        assert not _allowed(statements, action, "C#com_1")
    reads_key_hashes = _allowed(statements, "dynamodb:GetItem", "KEYHASH#" + "0" * 64)
    assert reads_key_hashes == (function == "AuthorizerFunction")


class Recorder:
    """Wraps a table's methods and records (IAM action, partition key) of every call."""

    def __init__(self, table: Any) -> None:
        self.calls: set[tuple[str, str]] = set()
        for name, action in ACTIONS.items():
            setattr(table, name, self._wrap(action, getattr(table, name)))

    def _wrap(self, action: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            first = args[0] if args else None
            if isinstance(first, dict):
                pk = first["pk"]
            elif isinstance(first, str):
                pk = first
            elif isinstance(first, list):
                pk = next((key[0] for key in first), "")
            else:
                pk = getattr(first, "partition", "")
            self.calls.add((action, re.sub(r"#.*", "#", str(pk))))
            return method(*args, **kwargs)

        return recorded


@pytest.fixture
def recorded(memory_services: wiring.Services) -> Iterator[tuple[World, Recorder]]:
    world = World.create(memory_services)
    yield world, Recorder(memory_services.tables.communities)


def test_the_inbound_function_does_only_what_its_policy_allows(
    template: dict[str, Any], recorded: tuple[World, Recorder]
) -> None:
    world, recorder = recorded
    space = world.space("Premium")
    _hook, token = world.incoming(add_spaces=[space.id])
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    _signed_hook, signed_token = world.incoming(name="signed", signing_secret=secret)
    recorder.calls.clear()  # setup done by the API; from here on what InboundFunction does

    assert post_form(token, {"email": "a@example.com", "first_name": "A"})[0] == 200
    assert post_form(ids.new_token(), {"email": "b@example.com"})[0] == 404
    body = json.dumps({"email": "c@example.com"}).encode()
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_iam",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign("msg_iam", now, body.decode()),
    }
    assert post(signed_token, body, "application/json", headers=headers)[0] == 200
    assert post(signed_token, body, "application/json", headers=headers)[0] == 409
    # the guard's other paths: renewing a claim TTL has not deleted yet, releasing one
    guard = incoming_signature.ReplayGuard(world.services.tables.communities)
    later = int(now.timestamp()) + 3600
    assert guard.claim(_signed_hook.id, SignedMessage("msg_iam", later), now=later)
    guard.release(_signed_hook.id, "msg_iam")

    statements = _statements_on(template, "InboundFunction", "CommunitiesTable")
    assert {action for action, _ in recorder.calls} >= {"dynamodb:GetItem", "dynamodb:PutItem"}
    denied = sorted(c for c in recorder.calls if not _allowed(statements, c[0], c[1] + "x"))
    assert denied == []


def test_the_authorizer_does_only_what_its_policy_allows(
    template: dict[str, Any], recorded: tuple[World, Recorder]
) -> None:
    world, recorder = recorded
    repo = CommunityRepository(world.services.tables.communities)
    _community, _key, plaintext = communities.create_community(
        repo, name="Other", site_url="https://other.example"
    )
    sessions = portal.PortalSessionRepository(world.services.tables.communities)
    _session, portal_token = portal.create_session(
        sessions, _community.id, expires_in=600, read_only=True, created_by=_key.id
    )
    recorder.calls.clear()
    # what AuthorizerFunction calls: API keys and portal tokens, known and unknown
    communities.authenticate(repo, plaintext, None)
    with pytest.raises(Unauthorized):
        communities.authenticate(repo, "hk_" + "x" * 43, None)
    assert portal.authenticate(sessions, portal_token).community_id == _community.id
    with pytest.raises(Unauthorized):
        portal.authenticate(sessions, portal.TOKEN_PREFIX + ids.new_token())
    statements = _statements_on(template, "AuthorizerFunction", "CommunitiesTable")
    assert recorder.calls == {("dynamodb:GetItem", "KEYHASH#"), ("dynamodb:GetItem", "PSHASH#")}
    assert all(_allowed(statements, a, p + "x") for a, p in recorder.calls)
