"""template.yaml: the tables the local stack builds from it, safety settings, IAM scoping, the
state machine, and the environment the functions get."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from hookline.config import Settings
from hookline_dev import template as tpl

REGION = "us-east-1"
FUNCTIONS = (
    "ApiFunction",
    "InboundFunction",
    "AuthorizerFunction",
    "DispatchFunction",
    "DeliverFunction",
    "AttemptFunction",
)
#: Actions that take no resource ARN at all (IAM requires "*" for them).
RESOURCELESS_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return tpl.load_template()


def resources(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


# ------------------------------------------------------------------ tables


def test_table_specs_follow_the_architecture() -> None:
    specs = {s.logical_id: s for s in tpl.table_specs()}
    assert {k: s.env_var for k, s in specs.items()} == tpl.TABLE_ENV_VARS
    for logical_id, spec in specs.items():
        expected = (
            ("id", None, "expiration")
            if logical_id == "IdempotencyTable"
            else (
                "pk",
                "sk",
                "expires_at",
            )
        )
        assert (spec.hash_key, spec.range_key, spec.ttl_attribute) == expected, logical_id
    assert specs["EventsTable"].stream_view_type == "NEW_IMAGE"
    assert {k for k, s in specs.items() if s.stream_view_type} == {"EventsTable"}
    # A community's delivery listing reads the table itself: one index per delivery write.
    assert specs["DeliveryLogTable"].indexes == {"by_webhook": ("gsi1pk", "gsi1sk")}
    assert specs["EventsTable"].indexes == {"by_time": ("pk", "gsi1sk")}
    assert {k for k, s in specs.items() if s.indexes} == {"DeliveryLogTable", "EventsTable"}


def test_the_dynamodb_adapter_knows_exactly_the_template_indexes() -> None:
    from hookline.adapters.dynamodb import INDEXES

    declared = {name: keys for s in tpl.table_specs() for name, keys in s.indexes.items()}
    assert declared == INDEXES


def test_created_tables_match_the_template(dynamodb: Any) -> None:
    names = tpl.create_tables(dynamodb, name_prefix="t")
    specs = {s.logical_id: s for s in tpl.table_specs()}
    assert set(names) == set(specs)
    assert names["CommunitiesTable"] == "t-communities"

    for logical_id, table_name in names.items():
        spec = specs[logical_id]
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        assert keys.get("HASH") == spec.hash_key
        assert keys.get("RANGE") == spec.range_key
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        indexes = {
            i["IndexName"]: tuple(k["AttributeName"] for k in i["KeySchema"])
            for i in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {name: tuple(k for k in key if k) for name, key in spec.indexes.items()}
        stream = table.get("StreamSpecification") or {}
        assert stream.get("StreamViewType") == spec.stream_view_type
        assert bool(table.get("LatestStreamArn")) == bool(spec.stream_view_type)
        ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == spec.ttl_attribute
        assert ttl["TimeToLiveStatus"] == "ENABLED"

    environment = tpl.table_environment(names)
    assert environment["EVENTS_TABLE"] == "t-events"
    assert set(environment) == set(tpl.TABLE_ENV_VARS.values())


def test_create_tables_twice_keeps_the_tables(dynamodb: Any) -> None:
    first = tpl.create_tables(dynamodb)
    assert tpl.create_tables(dynamodb) == first


def test_every_table_is_on_demand_recoverable_encrypted_and_retained(
    template: dict[str, Any],
) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 6
    for logical_id, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True, logical_id
        assert "TableName" not in props, f"{logical_id}: let CloudFormation name tables"
        assert table["DeletionPolicy"] == "Retain", logical_id
        assert table["UpdateReplacePolicy"] == "Retain", logical_id


# ------------------------------------------------------------------ IAM


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement written in the template (inline Policies of functions and state
    machines, and AWS::IAM::Role / Policy documents)."""

    def walk(owner: str, node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if "Effect" in node and "Action" in node:
                yield owner, node
                return
            for value in node.values():
                yield from walk(owner, value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(owner, value)

    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            yield from walk(logical_id, props.get("Policies") or [])
        elif resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield from walk(logical_id, props)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard_findings(statements: Iterator[tuple[str, dict[str, Any]]]) -> list[str]:
    findings = []
    for owner, statement in statements:
        if statement.get("Effect") != "Allow" or "*" not in _as_list(statement.get("Resource")):
            continue
        actions = set(_as_list(statement["Action"]))
        if not actions <= RESOURCELESS_ACTIONS:
            findings.append(f"{owner}: {sorted(actions - RESOURCELESS_ACTIONS)} on '*'")
    return findings


def test_no_policy_statement_grants_a_nameable_resource_as_star(template: dict[str, Any]) -> None:
    statements = list(_statements(template))
    assert statements, "expected inline statements"
    assert _wildcard_findings(iter(statements)) == []


def test_transformed_template_grants_no_nameable_resource_as_star(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SAM policy templates expand to statements naming the tables, queue, state machine
    and function; check the expansion (samtranslator, offline) too."""
    samtranslator_transform = pytest.importorskip("samtranslator.translator.transform")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    source = json.loads(json.dumps(template))
    for resource in source["Resources"].values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://bucket/{props[key]}"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    transformed = samtranslator_transform.transform(source, {}, NoManagedPolicies())
    roles = resources(transformed, "AWS::IAM::Role")
    for name in FUNCTIONS:
        assert f"{name}Role" in roles
    assert _wildcard_findings(_statements(transformed)) == []

    # The state machine may invoke AttemptFunction only.
    machine_role = json.dumps(roles["RetryStateMachineRole"]["Properties"]["Policies"])
    assert "lambda:InvokeFunction" in machine_role
    for other in FUNCTIONS:
        if other != "AttemptFunction":
            assert f'"Ref": "{other}"' not in machine_role


# ------------------------------------------------------------------ functions, state machine


def test_the_retry_state_machine_is_standard_and_invokes_the_attempt_function(
    template: dict[str, Any],
) -> None:
    machine = template["Resources"]["RetryStateMachine"]
    assert machine["Type"] == "AWS::Serverless::StateMachine"
    props = machine["Properties"]
    assert props["Type"] == "STANDARD"
    assert props["DefinitionSubstitutions"] == {
        "AttemptFunctionArn": {"Fn::GetAtt": ["AttemptFunction", "Arn"]}
    }
    assert props["Tracing"] == {"Enabled": True}

    arn = "arn:aws:lambda:us-east-1:123456789012:function:attempt"
    definition = json.loads(tpl.retry_state_machine_definition(arn))
    tasks = [s for s in definition["States"].values() if s["Type"] == "Task"]
    assert {t["Parameters"]["FunctionName"] for t in tasks} == {arn}
    assert {t["Parameters"]["Payload"]["action"] for t in tasks} == {
        "attempt",
        "record_crash",
    }


def test_only_the_callers_get_the_state_machine_arn(template: dict[str, Any]) -> None:
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert "RETRY_STATE_MACHINE_ARN" not in global_env  # AttemptFunction <-> machine cycle
    for name in FUNCTIONS:
        env = (template["Resources"][name]["Properties"].get("Environment") or {}).get(
            "Variables", {}
        )
        has_arn = "RETRY_STATE_MACHINE_ARN" in env
        assert has_arn == (name in {"ApiFunction", "DeliverFunction"}), name


def test_every_setting_is_in_the_function_environment(template: dict[str, Any]) -> None:
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', inspect.getsource(Settings.from_env)))
    local_only = {
        "HOOKLINE_OPERATOR_KEY",
        "MAIL_OUTBOX_DIR",
        "RETRY_STATE_MACHINE_ARN",
        "RETRY_TIME_SCALE",
    }
    declared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    assert read - local_only <= declared
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= declared


def test_parameter_defaults_match_the_settings_defaults() -> None:
    defaults = Settings()
    assert tpl.parameter_default("RetrySchedule") == ",".join(map(str, defaults.retry_schedule))
    assert (
        float(tpl.parameter_default("DeliveryTimeoutSeconds")) == defaults.delivery_timeout_seconds
    )
    assert int(tpl.parameter_default("DeliveryRetentionDays")) == defaults.delivery_retention_days
    assert int(tpl.parameter_default("EventRetentionDays")) == defaults.event_retention_days
    assert int(tpl.parameter_default("AutoDisableAfterHours")) == defaults.auto_disable_after_hours
    assert (
        int(tpl.parameter_default("AutoDisableMinFailures")) == defaults.auto_disable_min_failures
    )
    assert tpl.parameter_default("Stage") == "dev"
    with pytest.raises(KeyError):
        tpl.parameter_default("NoSuchParameter")


def test_the_dispatcher_reads_inserts_with_partial_batch_failures(template: dict[str, Any]) -> None:
    events = template["Resources"]["DispatchFunction"]["Properties"]["Events"]
    (stream,) = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
    assert stream["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"]}
    ]
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["DispatchDeadLetterQueue", "Arn"]
    }


def test_the_delivery_queue_feeds_deliver_function_with_partial_batch_failures(
    template: dict[str, Any],
) -> None:
    res = template["Resources"]
    events = res["DeliverFunction"]["Properties"]["Events"]
    (source,) = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert source["Queue"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "DeliverMaxConcurrency"}
    timeout = res["DeliverFunction"]["Properties"]["Timeout"]
    # A batch's attempts run at once: one delivery timeout plus the bookkeeping.
    assert timeout >= int(tpl.parameter_default("DeliveryTimeoutSeconds")) + 10
    queue = res["DeliveryQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]
    }
    # The dispatcher only fans out: it may read webhooks and send to the queue, nothing else.
    policies = json.dumps(res["DispatchFunction"]["Properties"]["Policies"])
    assert "DeliveryLogTable" not in policies and "StepFunctions" not in policies
    assert "SQSSendMessagePolicy" in policies


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup").values()
    names = [json.dumps(g["Properties"]["LogGroupName"]) for g in groups]
    for name in FUNCTIONS:
        assert any(f"/aws/lambda/${{{name}}}" in n for n in names), name
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_api_routes_and_authorization(template: dict[str, Any]) -> None:
    routes = {}
    for name in ("ApiFunction", "InboundFunction"):
        for event in template["Resources"][name]["Properties"]["Events"].values():
            props = event["Properties"]
            authorizer = (props.get("Auth") or {}).get("Authorizer", "default")
            routes[(props["Method"], props["Path"])] = (name, authorizer)
    assert routes[("ANY", "/v1/communities")] == ("ApiFunction", "default")
    assert routes[("ANY", "/v1/communities/{proxy+}")] == ("ApiFunction", "default")
    assert routes[("ANY", "/v1/event-types")] == ("ApiFunction", "default")
    assert routes[("ANY", "/v1/event-types/{proxy+}")] == ("ApiFunction", "default")
    for path in ("/v1/docs", "/v1/docs/{asset}", "/v1/openapi.json"):
        assert routes[("GET", path)] == ("ApiFunction", "NONE")
    public = {p for (_, p), (_, auth) in routes.items() if auth == "NONE"}
    assert public == {
        "/v1/hooks/{token}",
        "/v1/docs",
        "/v1/docs/{asset}",
        "/v1/openapi.json",
        "/portal",
        "/portal/{asset}",
    }
    assert routes[("POST", "/v1/hooks/{token}")] == ("InboundFunction", "NONE")
    api = template["Resources"]["HooklineApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "HooklineAuthorizer"
    responses = api["GatewayResponses"]
    for response_type in (
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ):
        body = responses[response_type]["ResponseTemplates"]["application/json"]
        shaped = json.loads(body.replace("$context.error.messageString", '"m"'))
        assert set(shaped) == {"code", "message", "data"}
        assert shaped["data"]["status"] == int(responses[response_type]["StatusCode"])


def test_dashboard_and_alarms_read_the_metrics_the_code_writes(template: dict[str, Any]) -> None:
    body = template["Resources"]["ServiceDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    custom = {
        tuple(m[:6])
        for w in dashboard["widgets"]
        for m in w["properties"]["metrics"]
        if m[0] == "Hookline"
    }
    # powertools adds `service` to every metric; the code adds `stage`.
    assert all(m[2:6] == ("service", "hookline", "stage", "x") for m in custom)
    names = {m[1] for m in custom}
    assert {"DeliverySucceeded", "DeliveryFailed", "DeliveryPermanentlyFailed"} <= names
    assert {"DeliveryLatency", "RetryScheduled", "InboundProcessed", "InboundRejected"} <= names

    alarm = template["Resources"]["PermanentFailureRateAlarm"]["Properties"]
    stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert {s["MetricName"] for s in stats} == {"DeliveryPermanentlyFailed", "DeliverySucceeded"}
    for stat in stats:
        assert stat["Namespace"] == "Hookline"
        assert {d["Name"]: d["Value"] for d in stat["Dimensions"]} == {
            "service": "hookline",
            "stage": {"Ref": "Stage"},
        }
    for logical_id, resource in resources(template, "AWS::CloudWatch::Alarm").items():
        assert resource["Properties"]["AlarmActions"]["Fn::If"][0] == "HasAlarmEmail", logical_id


def test_only_the_authorizer_and_the_api_read_the_operator_key(template: dict[str, Any]) -> None:
    """The authorizer checks it; ApiFunction derives the key that signs list cursors from it."""
    readers = {
        owner
        for owner, statement in _statements(template)
        if "ssm:GetParameter" in _as_list(statement["Action"])
        and "OperatorKeyParameterName" in json.dumps(statement.get("Resource"))
    }
    assert readers == {"AuthorizerFunction", "ApiFunction"}


def test_the_listing_indexes_project_what_their_filters_read(template: dict[str, Any]) -> None:
    def indexes(table: str) -> dict[str, Any]:
        props = template["Resources"][table]["Properties"]
        return {i["IndexName"]: i["Projection"] for i in props["GlobalSecondaryIndexes"]}

    # ?event= filters the events index; a page's events are then read from the table.
    assert indexes("EventsTable")["by_time"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["event"],
    }
    assert indexes("DeliveryLogTable")["by_webhook"] == {"ProjectionType": "ALL"}
