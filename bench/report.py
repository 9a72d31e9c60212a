"""The report: bench/results/latest.md, latest.json, PNG plots, and the README's performance
section (between <!-- performance:start --> and <!-- performance:end -->)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness

README_START = "<!-- performance:start -->"
README_END = "<!-- performance:end -->"
TIMES = "\u00d7"  # multiplication sign
DASH = "\u2013"  # en dash, for ranges


# --------------------------------------------------------------------------------------------
# Formatting


def num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def spread(summary: Mapping[str, Any] | None, digits: int = 0, unit: str = "") -> str:
    """'median (min-max)' of a harness.summary."""
    if not summary or summary.get("median") is None:
        return "n/a"
    if summary.get("n", 0) <= 1:
        return f"{num(summary['median'], digits)}{unit}"
    return (
        f"{num(summary['median'], digits)}{unit} "
        f"({num(summary['min'], digits)}{DASH}{num(summary['max'], digits)})"
    )


def verdict(met: bool | None) -> str:
    if met is None:
        return "—"
    return "**met**" if met else "**missed**"


def money(value: float) -> str:
    return f"${value:,.3f}" if value < 1 else f"${value:,.2f}"


# --------------------------------------------------------------------------------------------
# Profiles: own CPU time grouped by what it is


BLOCKING = "blocking calls (lock waits, socket reads, sleeps)"


_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "in-memory storage adapter (MemoryTable deep copies)",
        ("stdlib/copy.py", "hookline_dev/memory.py", "hookline/adapters/cursor.py"),
    ),
    (
        "log redaction (hookline.observability, regex)",
        ("hookline/observability.py", "stdlib/re/", "re.Pattern"),
    ),
    (
        "powertools logging + EMF metrics (JSON)",
        ("aws_lambda_powertools/", "stdlib/logging/", "stdlib/json/"),
    ),
    (
        "HTTP client (urllib3/requests/http.client, sockets)",
        (
            "urllib3/",
            "requests/",
            "stdlib/http/",
            "stdlib/socket.py",
            "stdlib/ssl.py",
            "stdlib/email/",
            "hookline/adapters/http_attempt.py",
        ),
    ),
    ("pydantic models", ("pydantic/", "pydantic_core/")),
    (
        "signing (HMAC-SHA256, base64)",
        ("hookline/domain/signing.py", "stdlib/hmac.py", "stdlib/base64.py", "_hashlib"),
    ),
    (
        "thread pool and locks",
        ("stdlib/concurrent/", "stdlib/threading.py", "stdlib/queue.py"),
    ),
    ("moto (AWS emulation)", ("moto/",)),
    ("botocore/boto3", ("botocore/", "boto3/", "s3transfer/")),
    ("clock and ids", ("stdlib/datetime.py", "hookline/clock.py", "hookline/ids.py")),
    ("hookline (domain, repositories, local stack)", ("hookline/",)),
)


def group_profile(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """CPU seconds by what the code is (builtins booked to their callers, see top_functions)."""
    groups: dict[str, float] = {}
    for row in rows:
        name = row["function"]
        if harness.is_blocking(name):
            group = BLOCKING
        else:
            group = next(
                (label for label, parts in _GROUPS if any(part in name for part in parts)),
                "builtins (unattributed)" if name.startswith("~:0(") else "other",
            )
        groups[group] = groups.get(group, 0.0) + row.get("attributed_s", row["own_s"])
    return sorted(groups.items(), key=lambda kv: kv[1], reverse=True)


def profile_table(profile: Mapping[str, Any] | None) -> list[str]:
    if not profile:
        return []
    grouped = [(name, seconds) for name, seconds in profile["groups"] if name != BLOCKING]
    total = sum(seconds for _, seconds in grouped) or 1.0
    lines = [
        "| where the CPU goes (blocking calls left out) | share |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {seconds / total:.0%} |" for name, seconds in grouped if seconds > 0]
    lines += ["", "| top functions (own CPU) | calls | own s |", "|---|---:|---:|"]
    lines += [
        f"| `{row['function']}` | {row['calls']:,} | {row['own_s']:.3f} |"
        for row in profile["top"]
        if not row["function"].startswith("~:0(")
    ][:10]
    if profile.get("entry_points"):
        lines += ["", "| entry point (cumulative CPU) | calls | s |", "|---|---:|---:|"]
        lines += [
            f"| `{row['function']}` | {row['calls']:,} | {row['cumulative_s']:.2f} |"
            for row in profile["entry_points"]
        ]
    return lines


# --------------------------------------------------------------------------------------------
# Sections


def _b1(result: Mapping[str, Any]) -> list[str]:
    w = result["workload"]
    cap = result["receiver_capacity"]
    local = result.get("local_stack")
    lines = [
        "## B1 — delivery throughput",
        "",
        f"{w['events']:,} events {TIMES} {w['webhooks']} webhooks = {w['deliveries']:,} signed "
        f"{w['payload_bytes']:,}-byte deliveries to {w['webhooks']} loopback receivers (in their "
        f"own process), stream batches of {w['stream_batch']}, {w['concurrency']} workers; "
        f"{w['rounds']} interleaved rounds (median, min{DASH}max).",
        "",
        "| run | deliveries/s | CPU ms per delivery |",
        "|---|---:|---:|",
        f"| engine: `dispatch_events`, in-memory storage, real signing + HTTP | "
        f"{spread(result['engine'])} | {spread(result['engine_cpu_ms_per_delivery'], 2)} |",
        f"| baseline: bare `requests` pool of {w['concurrency']}, same POSTs pre-signed | "
        f"{spread(result['baseline'])} | {spread(result['baseline_cpu_ms_per_delivery'], 2)} |",
        f"| **ratio engine / baseline** (target ≥ 0.9) | **{spread(result['ratio'], 2)}** "
        f"{verdict(result['met'])} | |",
    ]
    if local:
        lines.append(
            f"| full local stack (API → moto → stream poller → DispatchFunction), one run of "
            f"{local['events']:,} {TIMES} {local['webhooks']} | {num(local['rate'], 1)} | "
            f"{num(local['cpu_ms_per_delivery'], 1)} |"
        )
    lines += [
        "",
        f"Lost deliveries: {result['lost']}; failed: {result['failed']}. Signatures: "
        f"{result['signatures_valid']} of {result['signatures_checked']} sampled engine "
        "deliveries verified with the public `standardwebhooks` library.",
        "",
        "Receiver capacity with the bare client (raw keep-alive sockets, 32 connections, 1 KB "
        "POSTs), requests/s:",
        "",
        "| receiver | 5 receivers | 1 receiver |",
        "|---|---:|---:|",
    ]
    names = {"bench": "`bench/receiver.py` BenchServer", "tests": "`tests/receivers.py` Receiver"}
    for kind, label in names.items():
        if f"{kind}_5" in cap or f"{kind}_1" in cap:
            lines.append(
                f"| {label} | {spread(cap.get(f'{kind}_5'))} | {spread(cap.get(f'{kind}_1'))} |"
            )
    best = max(result["engine"]["max"], result["baseline"]["max"])
    bench5 = cap.get("bench_5", {}).get("median")
    if bench5:
        lines += [
            "",
            f"The benchmark receivers serve {bench5 / best:.1f}{TIMES} the fastest sender rate "
            "measured "
            "here, so they are not the bottleneck (the bare client shares the 2 cores with them).",
        ]
    if result.get("profile"):
        lines += ["", "Engine profile (one extra run, per-thread CPU via cProfile):", ""]
        lines += profile_table(result["profile"])
    if local and local.get("profile"):
        lines += ["", "Local stack profile (per-thread CPU via cProfile):", ""]
        lines += profile_table(local["profile"])
    return lines


def _b2(result: Mapping[str, Any]) -> list[str]:
    w = result["workload"]
    v = result["variants"]
    lines = [
        "## B2 — slow-endpoint isolation",
        "",
        f"{w['endpoints']} endpoints; the slow one holds every request for "
        f"{w['slow_endpoint_holds_s']:g} s, past the delivery timeout, shortened to "
        f"**{w['delivery_timeout_s']:g} s** for this benchmark (production default: 10 s). "
        f"{w['events']} events published at {w['rate_per_s']:g}/s; latency = publish → receipt "
        f"at the 19 healthy endpoints; {w['rounds']} interleaved rounds.",
        "",
        "| sender | healthy p50 ms | healthy p99 ms | lost | batches |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in v.items():
        lines.append(
            f"| {name} | {spread(row['p50_ms'])} | {spread(row['p99_ms'])} | {row['lost']} | "
            f"{spread(row['batches'])} |"
        )
    ratios = result["p99_ratio"]
    lines += [
        "",
        "| p99 with slow / without (target ≤ 1.2) | ratio |",
        "|---|---:|",
        f"| engine, stream batches (Lambda's model) | {spread(ratios['engine stream'], 1)} "
        f"{verdict(result['met'])} |",
        f"| engine, one batch | {spread(ratios['engine burst'], 2)} "
        f"{verdict(result['met_within_batch'])} |",
    ]
    if "local stack" in ratios:
        lines.append(
            f"| through `hookline local` ({w['local_healthy_webhooks']} healthy webhooks, "
            f"{w['local_events']} events per community) | {spread(ratios['local stack'], 2)} "
            f"{verdict(result['met_local_stack'])} |"
        )
    lines.append(f"| sequential sender | {spread(ratios['sequential'], 1)} |")
    return lines


def _b3(result: Mapping[str, Any]) -> list[str]:
    w = result["workload"]
    points = result["points"]
    lines = [
        "## B3 — fan-out scaling",
        "",
        f"{w['events_per_point']} events per point in batches of {w['batch']}; in-memory "
        f"storage, real signing and HTTP; {w['rounds']} interleaved rounds. Plot: "
        "`b3_fanout.png`.",
        "",
        "| webhooks in the community (3 subscribed) | ms per event |",
        "|---|---:|",
    ]
    lines += [
        f"| {t:,} | {spread(points[f'total={t}'], 2)} |" for t in w["totals_with_3_subscribed"]
    ]
    lines += ["", "| subscribed webhooks | ms per event |", "|---|---:|"]
    lines += [f"| {c:,} | {spread(points[f'subscribed={c}'], 2)} |" for c in w["subscribed"]]
    fit = result["subscribed_fit"]
    total_fit = result["total_fit"]
    lines += [
        "",
        f"Linear in the subscribed count: {fit['ms_per_subscribed_webhook']:.2f} ms per "
        f"subscribed webhook (intercept {fit['intercept_ms']:.2f} ms). Unsubscribed webhooks: "
        f"{total_fit['ms_per_unsubscribed_webhook'] * 1000:.1f} µs each per event "
        f"({result['flatness']:.1f}{TIMES} from {w['totals_with_3_subscribed'][0]:,} to "
        f"{w['totals_with_3_subscribed'][-1]:,} webhooks). Lost: {result['lost']}.",
    ]
    if result.get("lookup"):
        lines += [
            "",
            "| webhooks | lookup per batch (`WebhookRepository.all`), ms | of which pydantic "
            "validation, ms |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {spread(v['lookup_ms'], 1)} | {spread(v['validation_ms'], 1)} |"
            for k, v in result["lookup"].items()
        ]
    return lines


def _b4(result: Mapping[str, Any]) -> list[str]:
    funcs = result["functions"]
    w = result["workload"]
    lines = [
        "## B4 — cold start",
        "",
        f"Fresh interpreter per run, Lambda-like environment, median of {w['repeats']} "
        f"interleaved runs (min{DASH}max). *wall* = the whole child process (interpreter start + "
        "import + init) as the parent sees it; *import* = inside the child; *init* = the first "
        "`wiring.services()` (AWS clients), which Lambda runs on the first invocation; "
        "*compile* = CPU time to compile the layer's modules the handler loaded, which every "
        "cold start would add if the layer shipped no bytecode (Lambda's `/opt` is read-only).",
        "",
        '*ready* adds the first DynamoDB client (the floor\'s: `boto3.client("dynamodb")`) to '
        "*wall*: until the first request can read a table. The *floor* rows import only what "
        "the stack mandates and nothing of Hookline's: boto3, a pydantic model, powertools "
        "Logger, Metrics and Tracer (botocore patched, the X-Ray SDK with it) and, in `floor`, "
        "the REST event handler with validation (ApiFunction's stack; the other functions' is "
        "the floor without it).",
        "",
        "| handler | wall ms | wall / boto3 | ready / boto3 | import ms | init ms "
        "| compile ms (layer modules) | peak RSS MB | modules |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("`python -c 'import boto3'` (baseline)" if name == "boto3" else f"`{name}`", entry)
        for name, entry in funcs.items()
    ] + [(f"*{name}*", entry) for name, entry in result.get("floor", {}).items()]
    for label, entry in rows:
        ready = f"{entry['ready_ratio']:.2f}" if "ready_ratio" in entry else "—"
        compiled = (
            f"{spread(entry['layer_compile_ms'])} ({entry['layer_modules']})"
            if "layer_compile_ms" in entry
            else "—"
        )
        lines.append(
            f"| {label} | {spread(entry['wall_ms'])} | {entry['wall_ratio']:.2f} | {ready} | "
            f"{spread(entry['import_ms'])} | {spread(entry['init_ms'])} | {compiled} | "
            f"{spread(entry['rss_mb'])} | {entry['modules']:,} |"
        )
    lines += ["", f"Target: {result['target']} — {verdict(result['met'])}."]
    if result["heavy_found"]:
        lines += ["", "Heavy modules on a Lambda import path:", ""]
        for name, chains in result["heavy_found"].items():
            for module, chain in chains.items():
                lines.append(f"- `{name}`: `{module}` via " + " → ".join(f"`{c}`" for c in chain))
    else:
        lines += [
            "",
            "No heavy module (moto, cfn-lint, SAM translator, the local stack, OpenAPI/Swagger "
            "generation, matplotlib, PyYAML, pytest) is imported by any handler.",
        ]
    notable = [name for name, entry in funcs.items() if entry.get("notable")]
    if notable:
        from bench.b4_coldstart import NOTABLE

        lines += [
            "",
            "Cumulative import time of the big pieces (ms, one `-X importtime` run each; the "
            "first handler module to import a piece pays for it):",
            "",
            "| handler | " + " | ".join(f"`{m}`" for m in NOTABLE) + " |",
            "|---|" + "---:|" * len(NOTABLE),
        ]
        for name in notable:
            cells = [funcs[name]["notable"].get(m, {}).get("cumulative_ms") for m in NOTABLE]
            lines.append(
                f"| `{name}` | "
                + " | ".join("—" if c is None else f"{c:.0f}" for c in cells)
                + " |"
            )
        chains = {
            " → ".join(f"`{c}`" for c in funcs[name]["notable"][m]["chain"])
            for name in notable
            for m in ("aws_xray_sdk.core",)
            if m in funcs[name]["notable"]
        }
        if chains:
            lines += ["", "The X-Ray SDK comes in through " + "; ".join(sorted(chains)) + "."]
    if any(entry.get("by_package") for entry in funcs.values()):
        lines += [
            "",
            "Where the import time goes: own time per top-level package (`-X importtime`, one "
            "run each, ms):",
            "",
        ]
        for name, entry in funcs.items():
            packages = ", ".join(
                f"`{i['package']}` {i['self_ms']:.0f}" for i in entry.get("by_package", [])
            )
            if packages:
                label = "`import boto3`" if name == "boto3" else f"`{name}`"
                lines.append(f"- {label}: {packages}")
    return lines


def _b5(result: Mapping[str, Any]) -> list[str]:
    w = result["workload"]
    light = result.get("light")
    phases = [("target load", result, w["rate_per_s"], w["seconds"])]
    if light:
        phases.insert(0, ("light load", light, light["rate_per_s"], light["seconds"]))
    header = " | ".join(
        f"{label}: {rate:g}/s for {seconds:g} s" for label, _, rate, seconds in phases
    )
    rows = [
        ("events offered / published", lambda p: f"{p['events']:,} / {p['published']:,}"),
        ("achieved publish rate", lambda p: f"{num(p['achieved_publish_rate'], 1)}/s"),
        (
            f"not offered (stack too slow to accept them within 2{TIMES} the schedule)",
            lambda p: f"{p.get('not_offered', 0):,}",
        ),
        ("p50 publish → receipt", lambda p: f"{num(p['p50_ms'])} ms"),
        ("p99 publish → receipt", lambda p: f"{num(p['p99_ms'])} ms"),
        ("max", lambda p: f"{num(p['max_ms'])} ms"),
        (
            "deliveries expected / received",
            lambda p: f"{p['expected_deliveries']:,} / {p['received']:,}",
        ),
        (
            f"not delivered within the {w['grace_s']:g} s grace / duplicated / publish errors",
            lambda p: f"{p['lost']} / {p['duplicates']} / {p['publish_errors']}",
        ),
        ("drained after publishing ended", lambda p: f"{num(p['drain_after_publish_s'], 1)} s"),
        (
            "DispatchFunction invocations / dead-letter batches",
            lambda p: f"{p.get('dispatch_invocations')} / {p.get('dead_letter_batches')}",
        ),
        (
            "what the stack recorded for undelivered events (sample of 50)",
            lambda p: (
                ", ".join(f"{k}: {v}" for k, v in p.get("missing_sample_states", {}).items()) or "—"
            ),
        ),
    ]
    lines = [
        "## B5 — end-to-end latency in the local stack",
        "",
        f"Events published over HTTP to `hookline local` by {w['publishers']} publisher threads,"
        f" each delivered to {w['webhooks']} webhook(s); latency = POST sent → receipt. A light "
        "phase first (the stack unsaturated), then the target's rate, on the same stack.",
        "",
        f"| metric | {header} |",
        "|---|" + "---:|" * len(phases),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(p) for _, p, _, _ in phases) + " |")
    lines += ["", f"Target: {result['target']} at the target rate — {verdict(result['met'])}."]
    return lines


def cost_formula() -> list[str]:
    return [
        "Per published event, with S subscribed webhooks, a fraction f of first attempts "
        "failing, batch size B and C dispatch workers:",
        "",
        "```",
        "cost = P_api",
        "     + P_req + M_api·d_api·P_gbs                                  ApiFunction",
        "     + P_req/B + M_disp·(S·d_dlv + n_lookup·t_db/B)·P_gbs          DispatchFunction",
        "     + (W_pub + S·W_dlv + S·f·W_retry)·P_wru                      DynamoDB writes",
        "     + (R_pub + R_lookup/B + S·f·R_retry)·P_rru                   DynamoDB reads",
        "     + S·f·T·P_tr                                                 Step Functions",
        "     + S·f·A·(P_req + M_att·d_att·P_gbs)                          AttemptFunction",
        "d_api = c_api·k_api + n_api·t_db",
        "d_dlv = max(c_dlv·k_disp, (n_dlv·t_db + r) / C)     (CPU-bound or waiting on I/O)",
        "d_att = c_att·k_att + n_att·t_db + r",
        "k_fn  = max(1, 1769 MB / memory of fn)            (Lambda's CPU share)",
        "```",
        "",
        "M = memory (GB) from template.yaml; c = CPU ms measured on this machine; n = DynamoDB "
        "requests and W/R = write/read request units counted on the real code paths (item sizes "
        "included; the writes of every index template.yaml declares, by its projection; strongly "
        "consistent reads as the code issues them; a publish at steady state); T = "
        "state transitions of a retry group's workflow per member, counted by running "
        "statemachine/retry.asl.json over a group; A = AttemptFunction invocations per member; "
        "r = endpoint response time; t_db = DynamoDB "
        "request latency.",
    ]


def _b6(result: Mapping[str, Any], *, heading: str = "## B6 — cost model") -> list[str]:
    t = result["template"]
    m = result["measured"]
    sc = result["scenarios"]
    main = sc["main"]
    a = main["assumptions"]
    p = result["prices"]
    names = list(main["per_million"])
    lines = [
        heading,
        "",
        f"Dollars per **million published events**, {a['subscribed']} subscribed webhooks each, "
        f"1 KB payloads, {a['failure_rate']:.0%} of first attempts failing. Template: "
        f"{', '.join(t['architectures'])}; memory ApiFunction {t['memory_mb']['ApiFunction']} MB,"
        f" DispatchFunction {t['memory_mb']['DispatchFunction']} MB, AttemptFunction "
        f"{t['memory_mb']['AttemptFunction']} MB; stream batch {t['dispatch_batch_size']}; "
        f"{t['dispatch_concurrency']} dispatch workers; {t['state_machine_type']} state machine "
        f"(one execution per retry group: {m['retry_recovers']['transitions_per_group']:g} "
        f"transitions for a group of {m['retry_recovers']['members']} whose first retry "
        f"succeeds, {m['retry_never']['transitions_per_group']:g} for a group of "
        f"{m['retry_never']['members']} whose {len(t['retry_schedule'])} retries all fail; "
        "the formula's T, A and retry units are per member).",
        "",
        *cost_formula(),
        "",
        "Counted per publish (steady state): "
        f"{m['publish']['dynamodb']['requests']:g} DynamoDB requests "
        f"({m['publish']['dynamodb']['wru']:g} WRU of which "
        f"{m['publish']['dynamodb']['gsi_wru']:g} "
        f"for the events index, {m['publish']['dynamodb']['rru']:g} RRU; a key's first request "
        f"in a minute adds its last_used_at write: "
        f"{m['publish']['dynamodb_first_request']['wru']:g} WRU); per "
        f"delivery: {m['dispatch']['dynamodb_per_delivery']['requests']:.2f} requests "
        f"({m['dispatch']['dynamodb_per_delivery']['wru']:.2f} WRU of which "
        f"{m['dispatch']['dynamodb_per_delivery']['gsi_wru']:.2f} for the `by_webhook` index: "
        + ", ".join(
            f"{v:g}{TIMES} {k}"
            for k, v in m["dispatch"]["dynamodb_per_delivery"]["by_request"].items()
        )
        + "); per member of a retry group whose first retry succeeds: "
        f"{m['retry_recovers']['dynamodb_cycle']['requests']:.2f} requests "
        f"({m['retry_recovers']['dynamodb_cycle']['wru']:.2f} WRU, "
        f"{m['retry_recovers']['dynamodb_cycle']['rru']:.2f} RRU). Measured CPU: publish "
        f"{m['publish']['cpu_ms']:.1f} ms, delivery {m['dispatch']['cpu_ms_per_delivery']:.2f} "
        f"ms, retry attempt {m['retry_recovers']['attempt_cpu_ms']:.1f} ms.",
        "",
        f"| component | {' | '.join(sc)} |",
        "|---|" + "---:|" * len(sc),
    ]
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(money(s["per_million"][name]) for s in sc.values()) + " |"
        )
    lines.append(
        "| **Hookline total** | "
        + " | ".join(f"**{money(s['total'])}**" for s in sc.values())
        + " |"
    )
    for name in main["eventbridge"]:
        lines.append(
            f"| EventBridge: {name} | "
            + " | ".join(money(s["eventbridge"][name]) for s in sc.values())
            + " |"
        )
    lines.append(
        "| **EventBridge total** | "
        + " | ".join(f"**{money(s['eventbridge_total'])}**" for s in sc.values())
        + " |"
    )
    lines.append(
        "| EventBridge behind the same front door (+ API Gateway REST and WAF) | "
        + " | ".join(money(s["eventbridge_with_rest_front_door"]) for s in sc.values())
        + " |"
    )
    for name in main["what_if"]:
        lines.append(
            f"| What-if, not built: {name} | "
            + " | ".join(money(s["what_if"][name]) for s in sc.values())
            + " |"
        )
    lines.append(
        "| Hookline / EventBridge | "
        + " | ".join(f"{s['ratio_to_eventbridge']:.1f}{TIMES}" for s in sc.values())
        + " |"
    )
    lines += [
        "",
        f"Assumptions: public list prices, {result['region']}, as of {result['prices_as_of']} "
        f"(first tiers, no free tier): Lambda arm64 ${p['lambda_gb_s_arm64']:.10f}/GB-s and "
        f"${p['lambda_request'] * 1e6:.2f}/M requests; DynamoDB on-demand "
        f"${p['dynamodb_wru'] * 1e6:.3f}/M WRU and ${p['dynamodb_rru'] * 1e6:.3f}/M RRU; "
        f"DynamoDB Streams ${p['streams_get_records'] * 1e5:.2f}/100k GetRecords (not charged "
        f"when Lambda triggers read them); Step Functions Standard "
        f"${p['sfn_transition'] * 1e3:.3f}/1k state transitions; API Gateway REST "
        f"${p['apigw_rest_request'] * 1e6:.2f}/M (HTTP API ${p['apigw_http_request'] * 1e6:.2f}"
        f"/M); AWS WAF ${p['waf_request'] * 1e6:.2f}/M requests the web ACL inspects (its fixed "
        "$5 a month per ACL and $1 per rule are left out); EventBridge "
        f"${p['eventbridge_custom_event'] * 1e6:.2f}"
        f"/M custom events (64 KB chunks) and ${p['eventbridge_api_destination'] * 1e6:.2f}/M API "
        f"destination invocations (retries assumed billed as invocations). Endpoints answer in "
        f"{a['endpoint_response_ms']:g} ms (1 s in the second column); the last column publishes "
        "with the batch route (one front-door request and one ApiFunction invocation for its "
        "events; B6 itself is single publishes); a DynamoDB request takes "
        f"{a['dynamodb_request_ms']:g} ms; stream batches are full ({t['dispatch_batch_size']} "
        f"events; at low traffic batches are smaller and the per-invocation share grows); the "
        f"authorizer's answer is cached {t['authorizer_cache_ttl_s']} s per key, so its cost "
        "(at most one invocation per key per TTL) is left out; Lambda arm64 runs as fast per vCPU"
        " as this machine; storage, data transfer, CloudWatch Logs/metrics and X-Ray are left "
        "out (the same for both sides except logs).",
    ]
    return lines


# --------------------------------------------------------------------------------------------
# Plots


def plot_b2(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = result["variants"]
    names = list(variants)
    p50 = [variants[n]["p50_ms"]["median"] for n in names]
    p99 = [variants[n]["p99_ms"]["median"] for n in names]
    fig, axis = plt.subplots(figsize=(10, 4.5))
    ys = range(len(names))
    axis.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99")
    axis.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50")
    axis.set_yticks(list(ys), names)
    axis.set_xscale("log")
    axis.set_xlabel("publish → receipt at the 19 healthy endpoints, ms (log)")
    axis.invert_yaxis()
    axis.legend()
    axis.grid(True, axis="x", alpha=0.3)
    fig.suptitle(
        f"B2 slow-endpoint isolation — {harness.machine_line(result['machine'])}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Writing


def summary_rows(results: Mapping[str, Any]) -> list[str]:
    rows = [
        "| benchmark | Hookline | baseline | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    if "b1" in results:
        b1 = results["b1"]
        rows.append(
            f"| B1 throughput, engine (in-memory storage) | {spread(b1['engine'])} deliveries/s |"
            f" {spread(b1['baseline'])}/s bare `requests` pool | {spread(b1['ratio'], 2)} | "
            f"≥ 0.9 {verdict(b1['met'])} |"
        )
        if b1.get("local_stack"):
            local = b1["local_stack"]
            rows.append(
                f"| B1 throughput, full local stack | {num(local['rate'], 1)} "
                f"deliveries/s | {spread(b1['baseline'])}/s | "
                f"{local['rate'] / b1['baseline']['median']:.3f} | none (reported) |"
            )
    if "b2" in results:
        b2 = results["b2"]
        v = b2["variants"]
        rows.append(
            f"| B2 healthy p99 with a slow endpoint, stream batches | "
            f"{spread(v['engine stream, with slow']['p99_ms'])} ms | "
            f"{spread(v['engine stream, without slow']['p99_ms'])} ms without it | "
            f"{spread(b2['p99_ratio']['engine stream'], 1)} | ≤ 1.2 {verdict(b2['met'])} |"
        )
        rows.append(
            f"| B2 same, inside one batch | {spread(v['engine burst, with slow']['p99_ms'])} ms |"
            f" {spread(v['engine burst, without slow']['p99_ms'])} ms without it | "
            f"{spread(b2['p99_ratio']['engine burst'], 2)} | ≤ 1.2 "
            f"{verdict(b2['met_within_batch'])} |"
        )
        if "local stack" in b2["p99_ratio"]:
            rows.append(
                "| B2 same, through `hookline local` (fresh stack per run; short runs that end "
                "before the 30 s slow-endpoint hold, which breaks isolation when it ends) | "
                f"{spread(v['local stack, with slow']['p99_ms'])} ms | "
                f"{spread(v['local stack, without slow']['p99_ms'])} ms without it | "
                f"{spread(b2['p99_ratio']['local stack'], 2)} | ≤ 1.2 "
                f"{verdict(b2['met_local_stack'])} |"
            )
        rows.append(
            f"| B2 sequential sender (CMS plugin) with the slow endpoint | "
            f"{spread(v['sequential, with slow']['p99_ms'])} ms | "
            f"{spread(v['sequential, without slow']['p99_ms'])} ms without it | "
            f"{spread(b2['p99_ratio']['sequential'], 1)} | — |"
        )
    if "b3" in results:
        b3 = results["b3"]
        w = b3["workload"]
        first, last = w["totals_with_3_subscribed"][0], w["totals_with_3_subscribed"][-1]
        rows.append(
            f"| B3 ms/event, {first:,} → {last:,} webhooks (3 subscribed) | "
            f"{spread(b3['points'][f'total={last}'], 2)} | "
            f"{spread(b3['points'][f'total={first}'], 2)}"
            f" at {first:,} | {b3['flatness']:.2f} | ≤ 1.2 {verdict(b3['flatness'] <= 1.2)} |"
        )
        rows.append(
            f"| B3 ms per extra subscribed webhook | "
            f"{b3['subscribed_fit']['ms_per_subscribed_webhook']:.2f} | — | — | linear, small |"
        )
    if "b4" in results:
        b4 = results["b4"]
        funcs = {k: v for k, v in b4["functions"].items() if k != "boto3"}
        worst = max(funcs, key=lambda k: funcs[k]["wall_ratio"]) if funcs else None
        floor = b4.get("floor", {}).get("floor")
        if worst:
            rows.append(
                f"| B4 cold start, slowest handler (`{worst}`)"
                + (f"; the stack alone: {floor['wall_ratio']:.2f}" if floor else "")
                + " | "
                f"{spread(funcs[worst]['wall_ms'])} ms | "
                f"{spread(b4['functions']['boto3']['wall_ms'])} ms `import boto3` | "
                f"{funcs[worst]['wall_ratio']:.2f} | ≤ 1.5 {verdict(b4['met'])} |"
            )
    if "b5" in results:
        b5 = results["b5"]
        light = b5.get("light")
        if light:
            rows.append(
                f"| B5 local stack publish → receipt at {light['rate_per_s']:g}/s (light) | "
                f"p50 {num(light['p50_ms'])} ms, p99 {num(light['p99_ms'])} ms | — | — | — |"
            )
        rows.append(
            f"| B5 local stack publish → receipt at {b5['workload']['rate_per_s']:g}/s | "
            f"p50 {num(b5['p50_ms'])} ms, p99 {num(b5['p99_ms'])} ms, "
            f"{b5['lost']} undelivered after {b5['workload']['grace_s']:g} s | — | — |"
            f" p99 < 1 s, none lost {verdict(b5['met'])} |"
        )
    if "b6" in results:
        main = results["b6"]["scenarios"]["main"]
        rows.append(
            f"| B6 $ per million events (3 webhooks, 1 % failing) | {money(main['total'])} | "
            f"{money(main['eventbridge_total'])} EventBridge + API destinations | "
            f"{main['ratio_to_eventbridge']:.1f} | ≤ $8 {verdict(main['total'] <= 8)} |"
        )
        if "dead_delivery_total" in main:
            rows.append(
                "| B7 $ per million deliveries to an endpoint that fails every attempt | "
                f"{money(main['dead_delivery_total'])} | — | — | ≤ $50 "
                f"{verdict(main['dead_delivery_total'] <= 50)} |"
            )
    return rows


def markdown(results: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    info = meta["machine"]
    lines = [
        "# Hookline benchmark report",
        "",
        f"Generated {meta['finished']} by `python -m bench.run` (`make bench`); the "
        f"benchmarks took {sum(r.get('elapsed_s', 0) for r in results.values()) / 60:.1f} min"
        + (
            f" (this invocation re-ran {', '.join(meta['selected'])} only and kept the others' "
            "earlier results)"
            if "selected" in meta and len(meta["selected"]) < len(results)
            else ""
        )
        + f". **Machine:** {harness.machine_line(info)}. Load "
        f"average {meta['load_start']} at the start and {meta['load_end']} at the end (1/5/15 "
        "min): other processes share this machine, which is why every comparison is made in "
        f"interleaved rounds and quoted as median (min{DASH}max).",
        "",
        "## Summary",
        "",
        *summary_rows(results),
        "",
    ]
    sections = {"b1": _b1, "b2": _b2, "b3": _b3, "b4": _b4, "b5": _b5, "b6": _b6}
    for key, section in sections.items():
        if key in results:
            lines += section(results[key])
            notes = meta.get("notes", {}).get(key)
            if notes:
                lines += ["", *notes]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write(results: Mapping[str, Any], meta: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """latest.md, latest.json and the plots into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if "b3" in results:
        from bench import b3_fanout

        paths["b3"] = out_dir / "b3_fanout.png"
        b3_fanout.plot(results["b3"], str(paths["b3"]))
    if "b2" in results:
        paths["b2"] = out_dir / "b2_isolation.png"
        plot_b2(results["b2"], paths["b2"])
    paths["md"] = out_dir / "latest.md"
    paths["md"].write_text(markdown(results, meta))
    paths["json"] = out_dir / "latest.json"
    paths["json"].write_text(
        json.dumps(_jsonable({"meta": meta, "results": results}), indent=1, default=str) + "\n"
    )
    paths["summary"] = out_dir / "summary.json"
    paths["summary"].write_text(json.dumps(summary(results, meta), indent=1) + "\n")
    return paths


def summary(results: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The headline local-stack figures, one number each (bench/results/summary.json):
    publishes/s the stack accepted and the publish -> receipt p99 in B5's main phase."""
    figures: dict[str, Any] = {
        "finished": meta.get("finished"),
        "quick": bool(meta.get("quick")),
        "load_start": meta.get("load_start"),
    }
    b5 = results.get("b5")
    if b5:
        figures.update(
            local_publish_per_s=round(float(b5["achieved_publish_rate"]), 1),
            B5_p99_ms=round(float(b5["p99_ms"]), 1),
            B5_offered_per_s=b5["workload"]["rate_per_s"],
            B5_lost=b5["lost"],
            B5_met=bool(b5["met"]),
        )
    local = (results.get("b1") or {}).get("local_stack") or {}
    if local.get("publish_seconds"):
        # B1's local run: publishes accepted with publishers sending as fast as it answers.
        figures["local_publish_max_per_s"] = round(local["events"] / local["publish_seconds"], 1)
    figures.update(headline(results))
    return figures


def headline(results: Mapping[str, Any]) -> dict[str, float | None]:
    """Issue 11's headline figures as numbers (None for a benchmark not run)."""

    def pick(key: str, read: Any) -> float | None:
        try:
            return float(read(results[key]))
        except (KeyError, TypeError, ValueError):
            return None

    def b4_max(b4: Mapping[str, Any]) -> float:
        return max(f["wall_ratio"] for f in b4["functions"].values() if "wall_ratio" in f)

    return {
        "B1_ratio": pick("b1", lambda r: r["ratio"]["median"]),
        "B2_ratio": pick("b2", lambda r: r["p99_ratio"]["engine stream"]["median"]),
        "B2_local_ratio": pick("b2", lambda r: r["p99_ratio"]["local stack"]["median"]),
        "B3_ratio": pick("b3", lambda r: r["flatness"]),
        "B4_ratio_max": pick("b4", b4_max),
        "B5_p99_ms": pick("b5", lambda r: round(float(r["p99_ms"]), 1)),
        "B6_usd_per_million_events": pick("b6", lambda r: r["scenarios"]["main"]["total"]),
        "B7_usd_per_million_dead_deliveries": pick(
            "b6", lambda r: r["scenarios"]["main"]["dead_delivery_total"]
        ),
    }


def replace_readme_section(readme: Path, body: str) -> None:
    """Replace the text between the performance markers (the markers stay)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} ... {README_END} section")
    replacement = f"{README_START}\n{body.strip()}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: replacement, text, count=1))


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
