"""B6 — cost model: dollars per million published events.

Traffic: every event has 3 subscribed webhooks, 1 KB payloads, and 1 % of first attempts fail.
Nothing here is guessed that can be read or measured:

* memory sizes, architecture, the stream batch size and the authorizer cache TTL are read from
  template.yaml; the state transitions of one retry cycle come from running the real
  statemachine/retry.asl.json (hookline_dev.local.asl) with the real AttemptFunction handler;
* every DynamoDB request of a publish, a dispatch and a retry cycle is counted on the real code
  paths (the API handler, ``dispatch_events``, the attempt handler) over in-memory tables, with
  each item's DynamoDB size, and turned into read/write request units the way DynamoDB bills
  them (strongly consistent reads as this code makes them; the writes of every index
  template.yaml declares, with its projection); a publish is priced at steady state (a key's
  once-a-minute last_used_at write is reported apart);
* the CPU time of each step is measured here, on this machine.

What remains are stated assumptions: list prices, the endpoints' response time, DynamoDB's
per-request latency, and that Lambda's CPU share scales with memory (1,769 MB = 1 vCPU).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from bench import harness
from bench.dynamodb_units import CountingTables, Op, PlainTables, uncounted, units
from bench.receiver import ReceiverFarm
from hookline.domain.retry_workflow import GROUP_CONCURRENCY

PRICES_AS_OF = "2026-11-23"
REGION = "us-east-1"
#: Public list prices (USD), us-east-1, first pricing tier.
PRICES = {
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "streams_get_records": 0.02 / 1e5,  # not charged when Lambda reads the stream
    "sfn_transition": 0.025 / 1e3,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "apigw_rest_request": 3.50 / 1e6,
    "apigw_http_request": 1.00 / 1e6,  # what-if only: issue 12's WAF rule needs the REST API
    "waf_request": 0.60 / 1e6,  # per request the web ACL inspects (plus $5/ACL, $1/rule a month)
    "eventbridge_custom_event": 1.00 / 1e6,
    "eventbridge_api_destination": 0.20 / 1e6,
}
VCPU_MB = 1769  # Lambda allocates one full vCPU at 1,769 MB; less memory, proportionally less CPU

SUBSCRIBED = 3
FAILURE_RATE = 0.01
ASSUMED_ENDPOINT_MS = 100.0
ASSUMED_DYNAMODB_MS = 5.0


# --------------------------------------------------------------------------------------------
# The template's settings


def template_settings() -> dict[str, Any]:
    from hookline_dev.template import load_template

    template = load_template()
    glob = (template.get("Globals") or {}).get("Function") or {}
    params = template.get("Parameters") or {}
    resources = template.get("Resources") or {}

    def memory(logical_id: str) -> int:
        props = resources[logical_id].get("Properties") or {}
        return int(props.get("MemorySize", glob.get("MemorySize", 128)))

    batch = resources["DispatchFunction"]["Properties"]["Events"]["EventsStream"]["Properties"][
        "BatchSize"
    ]
    if isinstance(batch, dict) and "Ref" in batch:
        batch = params[batch["Ref"]]["Default"]
    machine = resources["RetryStateMachine"]["Properties"]
    return {
        "architectures": glob.get("Architectures", ["x86_64"]),
        "memory_mb": {
            name: memory(name)
            for name in (
                "ApiFunction",
                "AuthorizerFunction",
                "DispatchFunction",
                "DeliverFunction",
                "AttemptFunction",
                "InboundFunction",
            )
        },
        "queue_batch_size": int(
            next(
                e["Properties"]["BatchSize"]
                for e in resources["DeliverFunction"]["Properties"]["Events"].values()
                if e["Type"] == "SQS"
            )
        ),
        "dispatch_batch_size": int(batch),
        "dispatch_concurrency": int(
            (glob.get("Environment") or {}).get("Variables", {}).get("DISPATCH_CONCURRENCY", 32)
        ),
        "authorizer_cache_ttl_s": int(params["AuthorizerCacheTtlSeconds"]["Default"]),
        # the web ACL is on the stage unless the parameter's default turns it off
        "waf": str(params["WafRateLimitPerIp"]["Default"]) != "0",
        "retry_schedule": [int(s) for s in str(params["RetrySchedule"]["Default"]).split(",")],
        "state_machine_type": machine.get("Type", "STANDARD"),
    }


# --------------------------------------------------------------------------------------------
# Measuring the real code paths


def _median_ms(samples: Sequence[float]) -> float:
    return float(sorted(samples)[len(samples) // 2] * 1000) if samples else 0.0


def _publish_path(
    eng: harness.Engine, tables: Any, repeats: int, *, batch: int = 0
) -> dict[str, Any]:
    """POST /v1/communities/<id>/events through functions/api (ApiFunction); with `batch`,
    POST .../events/batch with that many events, the figures then per event."""
    from hookline.domain.communities import issue_key
    from hookline.domain.repositories import CommunityRepository
    from hookline_dev.local.lambdas import LambdaContext, load_handler

    key, _ = issue_key(CommunityRepository(tables.communities), eng.community.id, "bench")
    template = json.loads((harness.ROOT / "events" / "api-publish-event.json").read_text())
    handler = load_handler("api")
    one = {"event": "post.created", "data": harness._data(880, 1)}
    body = json.dumps({"events": [one] * batch} if batch else one)
    route, expected = ("events/batch", 207) if batch else ("events", 202)
    first: list[Op] = []
    steady: list[Op] = []
    cpu: list[float] = []
    for index in range(repeats):
        event = copy.deepcopy(template)
        path = f"/v1/communities/{eng.community.id}/{route}"
        event["path"] = path
        event["pathParameters"] = {"proxy": f"{eng.community.id}/{route}"}
        event["requestContext"]["path"] = "/dev" + path
        event["requestContext"]["authorizer"] = {
            "principalId": key.id,
            "role": "admin",
            "community_id": eng.community.id,
            "key_id": key.id,
        }
        event["body"] = body
        tables.take()
        started = time.thread_time()
        with harness.quiet():
            response = handler(event, LambdaContext(function_name="hookline-api"))
        cpu.append(time.thread_time() - started)
        published = json.loads(response["body"]).get("data") if batch else None
        if response["statusCode"] != expected or (
            published and any(r["status"] != 202 for r in published)
        ):
            raise RuntimeError(f"publish answered {response['statusCode']}: {response['body']}")
        taken = tables.take()
        if index == 0:
            first = taken
        steady = taken
    # The first request of a key also records its last_used_at (at most once a minute per key,
    # so nothing per request at any real rate): the model prices a later, steady-state one.
    per = max(batch, 1)
    return {
        "events_per_request": per,
        "cpu_ms": _median_ms(cpu) / per,
        "dynamodb": _per_event(units(steady), per),
        "dynamodb_first_request": _per_event(units(first), per),
    }


def _per_event(counted: dict[str, Any], events: int) -> dict[str, Any]:
    """Counted units of one request, per event of it."""
    by_request = {k: v / events for k, v in counted["by_request"].items()}
    return {k: v / events for k, v in counted.items() if k != "by_request"} | {
        "by_request": by_request
    }


def _dispatch_path(
    eng: harness.Engine, tables: Any, farm: ReceiverFarm, batch: int
) -> dict[str, Any]:
    from hookline.domain.dispatch import dispatch_events

    tables.take()
    events = harness.publish_events(eng, batch)
    tables.take()
    with harness.quiet():
        cpu = time.process_time()
        report = dispatch_events(eng.ctx, events)
        cpu = time.process_time() - cpu
    ops = tables.take()
    deliveries = report.delivered
    if deliveries != batch * SUBSCRIBED or (not ops and isinstance(tables, CountingTables)):
        raise RuntimeError(f"dispatch delivered {deliveries} of {batch * SUBSCRIBED}")
    lookups = [op for op in ops if op.table == "webhooks" and op.kind == "query"]
    per_delivery = [op for op in ops if op not in lookups]
    return {
        "events": batch,
        "deliveries": deliveries,
        "cpu_ms_per_delivery": cpu * 1000 / deliveries,
        "dynamodb_per_batch_lookup": units(lookups),
        "dynamodb_per_delivery": {
            k: (v / deliveries if isinstance(v, int | float) else v)
            for k, v in units(per_delivery).items()
            if k != "by_request"
        }
        | {"by_request": {k: v / deliveries for k, v in units(per_delivery)["by_request"].items()}},
    }


#: Retry groups (stated assumptions): the deliveries whose first attempt fails at one webhook
#: within the group window (60 s) share one workflow. B6: 1 % of the deliveries of a webhook
#: receiving 10 deliveries/s fail, 6 per window; B7: a dead endpoint receiving 1 delivery/s,
#: 60 per window.
GROUP_MEMBERS_B6 = 6
#: Events per request in the batch-publishing scenario (the route's maximum).
PUBLISH_BATCH = 100
GROUP_MEMBERS_B7 = 60


def _retry_cycle(
    eng: harness.Engine, tables: Any, farm: ReceiverFarm, *, recovers: bool, members: int
) -> dict[str, Any]:
    """`members` first attempts that fail (connection refused; then the receiver recovers, or
    not) at one webhook within one group window, and their group's workflow run by
    hookline_dev.local.asl over the real ASL and AttemptFunction handler. The clock is moved
    through each Wait (a virtual clock: the members' next times are wall-clock times). Figures
    are per member: the workflow's cost is shared by the group."""
    from unittest import mock

    from hookline import clock
    from hookline.domain.dispatch import dispatch_events
    from hookline.domain.repositories import WebhookRepository
    from hookline_dev.local.asl import StateMachine
    from hookline_dev.local.lambdas import LambdaContext, load_handler
    from hookline_dev.template import retry_state_machine_definition

    raw_webhooks = WebhookRepository(uncounted(tables.webhooks))  # uncounted: the bench's own edits
    failing_url = "http://127.0.0.1:9/unreachable"  # nothing listens on the discard port
    hook = harness.add_webhooks(eng, [failing_url], events=("member.*",))[0]
    events = harness.publish_events(eng, members, event_type="member.joined")
    tables.take()
    eng.scheduler.started.clear()
    window = eng.ctx.settings.retry_group_window_seconds
    time.sleep(window - time.time() % window if time.time() % window > window - 5 else 0)
    with harness.quiet():
        dispatch_events(eng.ctx, events)
    first = tables.take()
    groups = {s["name"]: s["document"] for s in eng.scheduler.started}
    if recovers:
        raw_webhooks.update(eng.community.id, hook.id, {"url": farm.url(0)})
    handler = load_handler("attempt")
    invocations: list[float] = []

    def invoke(_: str, payload: Any) -> Any:
        begun = time.process_time()  # the process: a round attempts on worker threads
        with harness.quiet():
            answer = handler(payload, LambdaContext(function_name="hookline-attempt"))
        invocations.append(time.process_time() - begun)
        return answer

    arn = "arn:aws:lambda:us-east-1:123456789012:function:hookline-attempt"
    machine = StateMachine(json.loads(retry_state_machine_definition(arn)), invoke)
    real_now, offset = clock.now, [timedelta(0)]
    transitions = 0
    with mock.patch.object(clock, "now", lambda: real_now() + offset[0]):
        for name, document in groups.items():
            execution = machine.start(name, document)
            while (pause := machine.step(execution)) is not None:
                offset[0] += timedelta(seconds=pause.seconds + 1)
            transitions += len(execution.history)
    cycle = tables.take()
    raw_webhooks.delete(eng.community.id, hook.id)
    per_member = {"wru": 0.0, "rru": 0.0, "requests": 0.0}
    counted = units(cycle)
    return {
        "status": execution.status,
        "states": execution.history,
        "members": members,
        "groups": len(groups),
        "transitions_per_group": transitions / len(groups),
        "transitions": transitions / members,
        "attempt_invocations": len(invocations) / members,
        "attempt_invocations_per_group": len(invocations) / len(groups),
        "attempt_cpu_ms": sum(invocations) * 1000 / max(len(invocations), 1),
        "dynamodb_first_attempt_extra": {
            k: v / members
            for k, v in units(
                [op for op in first if op.table != "webhooks" or op.kind != "query"]
            ).items()
            if k in per_member
        },
        "dynamodb_cycle": {k: counted[k] / members for k in per_member},
    }


def measure(farm: ReceiverFarm, *, batch: int = 100, repeats: int = 20) -> dict[str, Any]:
    """Count the DynamoDB requests of the three code paths (over counting tables), then time
    their CPU in a second pass over plain in-memory tables (counting itself costs CPU)."""
    passes: dict[str, dict[str, Any]] = {}
    for name, tables in (("counted", CountingTables()), ("timed", PlainTables())):
        eng = harness.engine(tables=tables)
        harness.add_webhooks(eng, [farm.url(i) for i in range(SUBSCRIBED)])
        passes[name] = {
            "publish": _publish_path(eng, tables, repeats),
            "publish_batch": _publish_path(eng, tables, max(repeats // 4, 2), batch=PUBLISH_BATCH),
            "dispatch": _dispatch_path(eng, tables, farm, batch),
            "retry_recovers": _retry_cycle(
                eng, tables, farm, recovers=True, members=GROUP_MEMBERS_B6
            ),
            "retry_never": _retry_cycle(
                eng, tables, farm, recovers=False, members=GROUP_MEMBERS_B7
            ),
        }
    counted, timed = passes["counted"], passes["timed"]
    counted["publish"]["cpu_ms"] = timed["publish"]["cpu_ms"]
    counted["dispatch"]["cpu_ms_per_delivery"] = timed["dispatch"]["cpu_ms_per_delivery"]
    for key in ("retry_recovers", "retry_never"):
        counted[key]["attempt_cpu_ms"] = timed[key]["attempt_cpu_ms"]
    return counted


# --------------------------------------------------------------------------------------------
# The model


def model(
    settings: Mapping[str, Any],
    measured: Mapping[str, Any],
    *,
    endpoint_ms: float = ASSUMED_ENDPOINT_MS,
    dynamodb_ms: float = ASSUMED_DYNAMODB_MS,
    failure_rate: float = FAILURE_RATE,
    subscribed: int = SUBSCRIBED,
    retry_key: str = "retry_recovers",
    publish_key: str = "publish",
) -> dict[str, Any]:
    """Dollars per million events, by component (see the README for the formula)."""
    p = PRICES
    mem = {k: v / 1024 for k, v in settings["memory_mb"].items()}  # GB

    def cpu_factor(logical_id: str) -> float:
        return max(1.0, VCPU_MB / settings["memory_mb"][logical_id])

    batch = settings["dispatch_batch_size"]
    queue_batch = settings["queue_batch_size"]
    pub = measured[publish_key]
    requests = 1 / pub["events_per_request"]  # front-door requests per event
    disp = measured["dispatch"]
    cycle = measured[retry_key]

    # ApiFunction: one invocation per publish.
    api_s = (
        pub["cpu_ms"] * cpu_factor("ApiFunction") + pub["dynamodb"]["requests"] * dynamodb_ms
    ) / 1000
    # DispatchFunction: a full batch of events per invocation, fan-out only (no HTTP): the
    # subscription lookups and one SendMessageBatch per 10 orders.
    lookup_s = disp["dynamodb_per_batch_lookup"]["requests"] * dynamodb_ms / 1000
    dispatch_s_per_event = lookup_s / batch + subscribed / 10 * dynamodb_ms / 1000
    # DeliverFunction: batches of `queue_batch` orders, attempted at once; an invocation lasts
    # the longer of its CPU and one delivery's waiting (DynamoDB + endpoint).
    per_delivery_io = disp["dynamodb_per_delivery"]["requests"] * dynamodb_ms + endpoint_ms
    deliver_s = (
        max(
            disp["cpu_ms_per_delivery"] * cpu_factor("DeliverFunction") * queue_batch,
            per_delivery_io,
        )
        / 1000
    )
    deliver_invocations = subscribed / queue_batch

    # Retries: per failed first attempt, its share of its group's workflow and AttemptFunction
    # invocations (the measured figures are per member already). One invocation attempts its
    # group's due members GROUP_CONCURRENCY at a time: it waits ceil(members / concurrency)
    # endpoint answers and its DynamoDB requests spread over as many lanes.
    def attempt_seconds(measured_cycle: Mapping[str, Any]) -> float:
        per_invocation = measured_cycle["members"] / measured_cycle["attempt_invocations_per_group"]
        waves = math.ceil(measured_cycle["members"] / GROUP_CONCURRENCY)
        requests = measured_cycle["dynamodb_cycle"]["requests"] * per_invocation
        return (
            measured_cycle["attempt_cpu_ms"] * cpu_factor("AttemptFunction")
            + requests / min(GROUP_CONCURRENCY, measured_cycle["members"]) * dynamodb_ms
            + waves * endpoint_ms
        ) / 1000

    attempt_s = attempt_seconds(cycle)
    failed = subscribed * failure_rate  # failed first attempts per event

    per_event = {
        "API Gateway REST (publish)": requests * p["apigw_rest_request"],
        "AWS WAF (web ACL on the stage)": requests * p["waf_request"] if settings["waf"] else 0.0,
        "ApiFunction requests": requests * p["lambda_request"],
        "ApiFunction duration": api_s * mem["ApiFunction"] * p["lambda_gb_s_arm64"],
        "DispatchFunction requests": p["lambda_request"] / batch,
        "DispatchFunction duration": dispatch_s_per_event
        * mem["DispatchFunction"]
        * p["lambda_gb_s_arm64"],
        # SendMessageBatch, ReceiveMessage and DeleteMessageBatch, per 10 orders each.
        "SQS delivery queue": 3 * subscribed / queue_batch * p["sqs_request"],
        "DeliverFunction requests": deliver_invocations * p["lambda_request"],
        "DeliverFunction duration": deliver_invocations
        * deliver_s
        * mem["DeliverFunction"]
        * p["lambda_gb_s_arm64"],
        "DynamoDB writes": (
            pub["dynamodb"]["wru"]
            + subscribed * disp["dynamodb_per_delivery"]["wru"]
            + failed
            * (
                cycle["dynamodb_first_attempt_extra"]["wru"]
                - disp["dynamodb_per_delivery"]["wru"]
                + cycle["dynamodb_cycle"]["wru"]
            )
        )
        * p["dynamodb_wru"],
        "DynamoDB reads": (
            pub["dynamodb"]["rru"]
            + disp["dynamodb_per_batch_lookup"]["rru"] / batch
            + subscribed * disp["dynamodb_per_delivery"]["rru"]
            + failed * cycle["dynamodb_cycle"]["rru"]
        )
        * p["dynamodb_rru"],
        "DynamoDB Streams (read by Lambda)": 0.0,
        "Step Functions transitions": failed * cycle["transitions"] * p["sfn_transition"],
        "AttemptFunction": failed
        * cycle["attempt_invocations"]
        * (p["lambda_request"] + attempt_s * mem["AttemptFunction"] * p["lambda_gb_s_arm64"]),
    }
    per_million = {name: value * 1e6 for name, value in per_event.items()}
    # B7: a delivery to an endpoint that fails every attempt (no publish, no API: the delivery
    # alone), from the same parts with subscribed = 1 and every first attempt failing.
    dead_cycle = measured["retry_never"]
    dead = {
        "SQS delivery queue": 3 / queue_batch * p["sqs_request"],
        "DeliverFunction": (
            p["lambda_request"] + deliver_s * mem["DeliverFunction"] * p["lambda_gb_s_arm64"]
        )
        / queue_batch,
        "DynamoDB writes": (
            dead_cycle["dynamodb_first_attempt_extra"]["wru"] + dead_cycle["dynamodb_cycle"]["wru"]
        )
        * p["dynamodb_wru"],
        "DynamoDB reads": (
            disp["dynamodb_per_delivery"]["rru"] + dead_cycle["dynamodb_cycle"]["rru"]
        )
        * p["dynamodb_rru"],
        "Step Functions transitions": dead_cycle["transitions"] * p["sfn_transition"],
        "AttemptFunction": dead_cycle["attempt_invocations"]
        * (
            p["lambda_request"]
            + attempt_seconds(dead_cycle) * mem["AttemptFunction"] * p["lambda_gb_s_arm64"]
        ),
    }
    total = sum(per_million.values())
    eventbridge = {
        "PutEvents (1 KB = one 64 KB chunk)": p["eventbridge_custom_event"] * 1e6,
        "API destinations (3 per event)": subscribed * p["eventbridge_api_destination"] * 1e6,
        "API destination retries (1 %, one retry each)": failed
        * p["eventbridge_api_destination"]
        * 1e6,
    }
    eb_total = sum(eventbridge.values())
    return {
        "assumptions": {
            "endpoint_response_ms": endpoint_ms,
            "dynamodb_request_ms": dynamodb_ms,
            "failure_rate": failure_rate,
            "subscribed": subscribed,
            "retry_scenario": retry_key,
            "events_per_publish": pub["events_per_request"],
        },
        "durations_s": {
            "api_invocation": api_s,
            "dispatch_per_event": dispatch_s_per_event,
            "dispatch_per_batch": dispatch_s_per_event * batch,
            "deliver_invocation": deliver_s,
            "attempt_invocation": attempt_s,
        },
        "per_million": per_million,
        "total": total,
        "dead_delivery_per_million": {k: v * 1e6 for k, v in dead.items()},
        "dead_delivery_total": sum(dead.values()) * 1e6,
        "eventbridge": eventbridge,
        "eventbridge_total": eb_total,
        "eventbridge_with_rest_front_door": eb_total
        + (per_event["API Gateway REST (publish)"] + per_event["AWS WAF (web ACL on the stage)"])
        * 1e6,
        "what_if": what_if(
            per_million,
            total,
            index_wru_per_delivery=disp["dynamodb_per_delivery"]["gsi_wru"],
            first_successes=subscribed - failed,
            requests_per_event=requests,
        ),
        "ratio_to_eventbridge": total / eb_total,
    }


def what_if(
    per_million: Mapping[str, float],
    total: float,
    *,
    index_wru_per_delivery: float,
    first_successes: float,
    requests_per_event: float,
) -> dict[str, float]:
    """Totals of designs not built, from the same counted parts: what B6's $8 would take.

    1. The management API (publishing included) on an HTTP API: $1.00/M instead of REST's
       $3.50, but an HTTP API cannot carry a web ACL, so management calls would lose the
       per-IP and per-key WAF rules (the hooks would keep them on the REST API).
    2. On top of 1, a delivery that succeeds at once written without its `by_webhook` entry
       (only retrying deliveries indexed): a webhook's listings would then read its whole
       community's partition, at a cost that grows with the community's other webhooks.
    """
    p = PRICES
    http = (
        total
        - per_million["API Gateway REST (publish)"]
        - per_million["AWS WAF (web ACL on the stage)"]
        + requests_per_event * p["apigw_http_request"] * 1e6
    )
    unindexed = http - first_successes * index_wru_per_delivery * p["dynamodb_wru"] * 1e6
    return {
        "management API on an HTTP API (no WAF for it)": http,
        "... and first-time successes not in the by_webhook index": unindexed,
    }


def run(
    *, batch: int = 100, repeats: int = 20, log: Callable[[str], None] = print
) -> dict[str, Any]:
    log("B6: cost model (template settings, counted DynamoDB units, measured CPU)")
    settings = template_settings()
    with ReceiverFarm(SUBSCRIBED) as farm:
        measured = measure(farm, batch=batch, repeats=repeats)
    from hookline import wiring

    wiring.reset()
    scenarios = {
        "main": model(settings, measured),
        "slow endpoints (1 s)": model(settings, measured, endpoint_ms=1000.0),
        "failing deliveries never recover": model(settings, measured, retry_key="retry_never"),
        f"batches of {PUBLISH_BATCH} (POST .../events/batch)": model(
            settings, measured, publish_key="publish_batch"
        ),
    }
    return {
        "name": "B6 cost model",
        "machine": harness.machine(),
        "prices": PRICES,
        "prices_as_of": PRICES_AS_OF,
        "region": REGION,
        "template": settings,
        "measured": measured,
        "scenarios": scenarios,
    }
