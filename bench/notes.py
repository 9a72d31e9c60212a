"""What the numbers mean: the per-benchmark notes of the report and the README's performance
section. The wording follows the measured results (met / missed, where the time goes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench import harness, report
from bench.report import DASH, TIMES, money, num, spread


def _shares(profile: Mapping[str, Any] | None) -> dict[str, float]:
    groups = [(g, t) for g, t in (profile or {}).get("groups", []) if g != report.BLOCKING]
    total = sum(t for _, t in groups) or 1.0
    return {g: t / total for g, t in groups}


def _b1(b1: Mapping[str, Any]) -> list[str]:
    out = []
    shares = _shares(b1.get("profile"))
    ratio = b1["ratio"]["median"]
    engine_cpu = b1["engine_cpu_ms_per_delivery"]["median"]
    bare_cpu = b1["baseline_cpu_ms_per_delivery"]["median"]
    top = ", ".join(f"{name} {share:.0%}" for name, share in list(shares.items())[:5])
    low, high = b1["ratio"]["min"], b1["ratio"]["max"]
    if b1["met"]:
        out.append(
            f"The engine keeps {ratio:.0%} of the bare sender's throughput while also creating "
            "the delivery, signing twice (Standard Webhooks + X-Hookline-Signature), recording "
            "the attempt, updating the delivery and the webhook, and writing a log line and an "
            "EMF metrics document per attempt"
            + (
                f" — but single rounds ranged from {low:.2f} to {high:.2f}: on this shared "
                "2-core machine the margin over 0.9 is within the noise."
                if low < 0.9
                else "."
            )
        )
    else:
        out.append(
            f"**Missed**: the engine reaches {ratio:.0%} of the bare sender. Both run on one "
            f"core's worth of Python (the GIL), so throughput is CPU per delivery: "
            f"{engine_cpu:.2f} ms in the engine against {bare_cpu:.2f} ms for the bare "
            "`requests` POST."
        )
    if shares:
        out.append(f"Where the engine's CPU goes (per-thread cProfile of one run): {top}.")
    storage = shares.get("in-memory storage adapter (MemoryTable deep copies)", 0.0)
    if storage:
        out.append(
            f"The in-memory storage adapter ({storage:.0%}: four writes per delivery, each "
            "deep-copied) is not code Lambda runs: there boto3 serialises each DynamoDB request"
            " instead, at a CPU cost this benchmark does not measure."
        )
    redaction = shares.get("log redaction (hookline.observability, regex)", 0.0)
    if redaction >= 0.05:
        out.append(
            f"Log redaction is {redaction:.0%} of the engine's CPU: every log line (one per "
            "attempt) goes through `hookline.observability.redacting_serializer`, which runs "
            "each string field through six regular expressions and then judges every run of 32+ "
            "URL-safe characters with three per-character `sum(...)` passes (`_judge_run`); the "
            "event ids in each line are such runs. Skipping the known id shapes (`evt_`, `dlv_`,"
            " `wh_`, `com_`, `att_`) or counting character classes with one regex would remove "
            "most of it."
        )
    logs = shares.get("powertools logging + EMF metrics (JSON)", 0.0)
    if logs >= 0.05:
        out.append(
            f"powertools logging and the per-attempt EMF metrics document add {logs:.0%} "
            "(JSON encoding of one log line and one metrics document per attempt)."
        )
    local = b1.get("local_stack")
    if local:
        local_shares = _shares(local.get("profile"))
        where = ", ".join(f"{name} {share:.0%}" for name, share in list(local_shares.items())[:4])
        out.append(
            f"The full local stack delivers {num(local['rate'], 1)} deliveries/s "
            f"({local['cpu_ms_per_delivery']:.1f} ms of CPU per delivery against "
            f"{engine_cpu:.1f} ms in the engine), API, stream, queue and attempts in one Python "
            "process with its publishing client"
            + (
                f"; it accepted {local['events'] / local['publish_seconds']:.0f} publishes/s "
                "from publishers sending as fast as it answers"
                if local.get("publish_seconds")
                else ""
            )
            + (f"; its CPU: {where}" if where else "")
            + (
                " (moto's share is its mock of `requests`, which matches every `requests` call "
                "in the process against AWS URLs: only an in-process client such as this "
                "benchmark's publisher pays it)"
                if local_shares.get("moto (AWS emulation)", 0.0) >= 0.03
                else ""
            )
            + ". Its tables are in memory with their streams (`hookline_dev/local/storage.py`), "
            "not moto, since moto's wire-format serialisation and GetRecords took three "
            "quarters of its CPU at 20 deliveries/s. It is a development stack; no target "
            "applies."
        )
    return out


def _b2(b2: Mapping[str, Any]) -> list[str]:
    v = b2["variants"]
    w = b2["workload"]
    with_slow = v["engine stream, with slow"]
    ratio = spread(b2["p99_ratio"]["engine stream"], 2)
    out = [
        ("**Met**" if b2["met"] else "**Missed**")
        + f": with a webhook of another community hanging past the {w['delivery_timeout_s']:g} s "
        f"timeout, the healthy deliveries' p99 is {num(with_slow['p99_ms']['median'])} ms, "
        f"{ratio}{TIMES} the run without it, over {with_slow['batches']['median']:g} stream "
        "batches. The dispatcher only fans out onto the delivery queue and returns at once; "
        f"the first attempts run in DeliverFunction invocations ({w.get('consumers', '?')} "
        "concurrent here, each a batch of up to 10 orders attempted at once), so a hung "
        "attempt holds one invocation and no other delivery waits for it. Inside one batch "
        f"delivered in process the ratio is {spread(b2['p99_ratio']['engine burst'], 2)}.",
        "What this does not yet bound: a hung endpoint receiving many deliveries holds one "
        "DeliverFunction invocation per hung batch for the timeout; at high rates it could use "
        "up the queue's MaximumConcurrency (50). There is no per-endpoint cap on concurrent "
        "attempts yet (see docs/architecture.md).",
    ]
    local = b2["p99_ratio"].get("local stack")
    if local:
        lw, lo = v["local stack, with slow"], v["local stack, without slow"]
        out.append(
            "Through `hookline local` over HTTP (a fresh stack per run, "
            f"{w['local_healthy_webhooks']} healthy webhooks, {w['local_events']} events per "
            "community, the production "
            f"{w['delivery_timeout_s']:g} s timeout): healthy p99 "
            f"{num(lw['p99_ms']['median'])} ms with the hung endpoint against "
            f"{num(lo['p99_ms']['median'])} ms without it, {spread(local, 2)}{TIMES}"
            + (" (within the target)." if b2.get("met_local_stack") else " (missed).")
            + " These runs stop before the slow-endpoint hold (30 s) ends, and that is where "
            "isolation breaks: when it ends, every order deferred to it goes to the hung "
            "endpoint at once, and in runs of 200 events per community the healthy p99 reached "
            "about 15 s (docs/architecture.md, 'Not done yet'). The target is not met."
        )
    out += [
        "A sequential sender (a CMS plugin posting inline or from cron) shows the problem "
        "isolation solves: every healthy endpoint after the slow one waits for its timeout on "
        f"every event (p99 {num(v['sequential, with slow']['p99_ms']['median'])} ms).",
    ]
    return out


def _b3(b3: Mapping[str, Any]) -> list[str]:
    lookup = b3.get("lookup") or {}
    largest = list(lookup)[-1] if lookup else None
    out = [
        "Per-event time grows linearly with the subscribed count: "
        f"{b3['subscribed_fit']['ms_per_subscribed_webhook']:.2f} ms per subscribed webhook, "
        "the cost of one more signed, recorded delivery."
    ]
    if b3["flatness"] <= 1.2:
        out.append(
            f"**Flat** in the unsubscribed count ({b3['flatness']:.2f}{TIMES} per event at the "
            "largest community against the smallest): the dispatcher keeps each community's "
            "subscription index in process and per batch reads only the community's "
            "subscription version; it rebuilds the index (one Query of the webhooks) only after "
            "a webhook's events or status changed."
        )
    elif b3["flatness"] > 1.5 and largest:
        entry = lookup[largest]
        share = entry["validation_ms"]["median"] / max(entry["lookup_ms"]["median"], 1e-9)
        out.append(
            f"It is **not flat** in the unsubscribed count: the dispatcher loads *all* of a "
            "community's webhooks once per batch, validates each into a pydantic model and "
            "matches each event against every one (`WebhookRepository.all`: "
            f"{spread(entry['lookup_ms'], 0)} ms for {largest} webhooks here). With batches of "
            f"{b3['workload']['batch']} events that lookup dominates at {largest} webhooks. Only "
            f"{share:.0%} of it is the pydantic validation; the rest is the in-memory adapter "
            "deep-copying every item (`MemoryTable.query` copies the whole partition for each "
            "500-item page), a benchmark artefact — on DynamoDB it is a paginated Query plus "
            "boto3's deserialisation, also O(webhooks). Larger stream batches amortise it; an "
            "index of active webhooks by event type would remove it."
        )
    return out


def _extra_packages(entry: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    """The packages a handler spends import time on that `import boto3` does not load."""
    baseline = {row["package"] for row in base.get("by_package", [])}
    baseline |= {"botocore", "boto3", "_awscrt", "awscrt", "cryptography", "urllib3", "s3transfer"}
    return [
        f"`{row['package']}` {row['self_ms']:.0f} ms"
        for row in entry.get("by_package", [])
        if row["package"] not in baseline
    ][:5]


def _b4(b4: Mapping[str, Any]) -> list[str]:
    funcs = {k: v for k, v in b4["functions"].items() if k != "boto3"}
    base = b4["functions"]["boto3"]
    out = []
    if funcs:
        worst = max(funcs, key=lambda k: funcs[k]["wall_ratio"])
        best = min(funcs, key=lambda k: funcs[k]["wall_ratio"])
        extra = funcs[worst]["import_ms"]["median"] - base["import_ms"]["median"]
        spent = _extra_packages(funcs[worst], base)
        verdict_text = "**Met**" if b4["met"] else "**Missed**"
        over = sorted(k for k, v in funcs.items() if v["wall_ratio"] > 1.5)
        out.append(
            f"{verdict_text}: the handlers take {funcs[best]['wall_ratio']:.1f}{DASH}"
            f"{funcs[worst]['wall_ratio']:.1f}{TIMES} the time of `import boto3`"
            + (f" ({', '.join(f'`{k}`' for k in over)} above 1.5)" if over else "")
            + f"; `{worst}` imports {num(extra)} ms more than boto3 alone"
            + (f", mostly {', '.join(spent)}" if spent else "")
            + f". Until the first request can read a table (*ready*: plus the first DynamoDB "
            f"client) they take {min(v['ready_ratio'] for v in funcs.values()):.1f}{DASH}"
            f"{max(v['ready_ratio'] for v in funcs.values()):.1f}{TIMES}."
        )
        floors = b4.get("floor", {})
        if "floor" in floors and "floor without event handler" in floors:
            full, core = floors["floor"], floors["floor without event handler"]
            out.append(
                "The floor, importing only what the stack mandates and nothing of Hookline's "
                "(boto3, a pydantic model, powertools Logger, Metrics and Tracer with botocore "
                "patched, which loads the X-Ray SDK, and for ApiFunction the REST event handler "
                f"with validation), takes {full['wall_ratio']:.2f}{TIMES} `import boto3` with the "
                f"event handler and {core['wall_ratio']:.2f}{TIMES} without it (ready "
                f"{full['ready_ratio']:.2f} and {core['ready_ratio']:.2f}{TIMES})"
                + (
                    ": the API's mandated stack alone is above 1.5"
                    if full["wall_ratio"] > 1.5
                    else ""
                )
                + ". Two things let a function come in under the floor. It imports no boto3: "
                "the adapters use botocore's own clients (hookline/adapters/aws.py), so boto3's "
                "resource layer and s3transfer (with multiprocessing) are not loaded and the "
                "first request builds a plain DynamoDB client, not a resource. And its imports "
                "run with the cyclic garbage collector paused (hookline/coldstart.py): the "
                "collections that would otherwise trip while the imports create several hundred "
                "thousand long-lived objects walk them all and free nothing (up to a sixth of a "
                "handler's import CPU, most in the API); the collector resumes afterwards with "
                "those objects frozen (`gc.freeze`). The floor rows do neither."
            )
        out.append(
            "Nothing is built at import that the first request does not need: the Tracer "
            "patches botocore only, pydantic models and request bodies build their validators "
            "on first use, AWS clients are made on the first request that needs each, the "
            "authorizer does not load the delivery code, the API loads powertools idempotency "
            "only for a request with an Idempotency-Key, and the batch utility is imported "
            "before pydantic so that it skips powertools' parser models "
            "(tests/deploy/test_cold_start.py keeps all of it so). What remains above the floor is "
            "powertools' batch utility with every event data class its package imports "
            "(DispatchFunction and DeliverFunction), the API's route modules (their pydantic "
            "models, dataclasses and powertools' route regexes) and hookline's own modules. "
            "The dispatcher still imports the delivery code (hookline.domain.delivery and what it "
            "imports) because the fan-out shares a module and DeliveryContext with the first "
            "attempt; splitting them would save it a few percent. Further ways: SnapStart for "
            "Python (3.12+)."
        )
    if funcs and all("layer_compile_ms" in entry for entry in funcs.values()):
        worst = max(funcs, key=lambda k: funcs[k]["layer_compile_ms"]["median"])
        entry = funcs[worst]
        out.append(
            "The layer ships python3.12 bytecode (unchecked-hash `.pyc`, layers/hookline/"
            "Makefile; tests/deploy/test_layer.py checks it). Without it Lambda's read-only `/opt` "
            "makes every cold start compile each module it imports from the layer again: "
            f"{num(entry['layer_compile_ms']['median'])} ms of CPU for the "
            f"{entry['layer_modules']} layer modules `{worst}` loads here, "
            f"{entry['layer_compile_ms']['median'] / base['wall_ms']['median']:.1f}{TIMES} "
            "`import boto3` on top of the times above, which are measured with bytecode."
        )
    out.append(
        "The load average during the run is in the report header; ratios move by 0.2 to 0.5 "
        "with it."
    )
    if b4.get("heavy_found"):
        out.append(
            "Heavy modules were found on a Lambda import path; the chains above show which "
            "module pulls each in."
        )
    out.append(
        "Measured on this machine's CPython "
        f"{b4['machine']['python']} (x86_64), not Lambda's 3.12 on arm64: absolute times differ"
        " there, the ratio to `import boto3` is what carries over."
    )
    return out


def _b5(b5: Mapping[str, Any]) -> list[str]:
    w = b5["workload"]
    out = []
    light = b5.get("light")
    if light:
        out.append(
            f"Unsaturated ({light['rate_per_s']:g} events/s) the local stack delivers in p50 "
            f"{num(light['p50_ms'])} ms / p99 {num(light['p99_ms'])} ms"
            + (", nothing lost." if light["lost"] == 0 else f", {light['lost']} undelivered.")
        )
    if b5["met"]:
        out.append(
            f"It keeps up with {w['rate_per_s']:g} events/s with p99 {num(b5['p99_ms'])} ms and "
            "nothing lost."
        )
        return out
    reasons = []
    if b5.get("not_offered"):
        reasons.append(
            f"{b5['not_offered']:,} of {w['events']:,} events could not even be offered within "
            f"twice the {w['seconds']:g} s schedule"
        )
    if b5["achieved_publish_rate"] < 0.9 * w["rate_per_s"]:
        reasons.append(
            f"the stack accepted {num(b5['achieved_publish_rate'], 1)} publishes/s, not "
            f"{w['rate_per_s']:g}"
        )
    if b5["p99_ms"] == b5["p99_ms"] and b5["p99_ms"] >= 1000:
        reasons.append("the dispatcher fell behind the stream and latency grew with the backlog")
    if b5["lost"]:
        reasons.append(f"{b5['lost']} deliveries had not arrived {w['grace_s']:g} s later")
    elif b5["published"]:
        reasons.append("yet every published event was delivered exactly once in the end")
    out.append(
        f"**Missed at {w['rate_per_s']:g} events/s**: "
        + "; ".join(reasons or ["see the table"])
        + ". The local stack runs API Gateway, the tables, their streams, the delivery queue and "
        "every attempt in one Python process, on one core's worth of Python (the GIL); the "
        "local-stack profile (B1 in the full report) shows where its CPU goes."
    )
    return out


def notes(results: Mapping[str, Any]) -> dict[str, list[str]]:
    writers = {"b1": _b1, "b2": _b2, "b3": _b3, "b4": _b4, "b5": _b5}
    out = {key: writer(results[key]) for key, writer in writers.items() if key in results}
    if "b3" in out and "b1" in results:
        out["b3"].append(
            f"(B1 measured {results['b1']['engine_cpu_ms_per_delivery']['median']:.2f} ms of CPU "
            "per delivery on the same engine path.)"
        )
    local = results.get("b1", {}).get("local_stack")
    if "b5" in out and local and not results["b5"]["met"]:
        out["b5"].append(
            f"Its whole-pipeline capacity, measured in B1, is {num(local['rate'], 1)} "
            f"deliveries/s, below the {results['b5']['workload']['rate_per_s']:g} events/s asked "
            "for here."
        )
    return out


def readme(results: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The README's performance section: the summary with baselines and ratios, what the
    misses mean, and the cost model."""
    note = notes(results)
    lines = [
        f"Measured by `make bench` (`python -m bench.run`) on {meta['finished']}: "
        f"{harness.machine_line(meta['machine'])}; the full report with every table and "
        "profile is [bench/results/latest.md](bench/results/latest.md) (plots alongside). Each "
        "comparison runs engine and baseline in interleaved rounds against loopback receivers "
        f"in their own process and quotes the median (min{DASH}max); the receivers' own "
        "capacity is "
        "measured in the same run. Load average at the start was "
        f"{meta['load_start'][0]:g}: the machine was shared.",
        "",
        *report.summary_rows(results),
        "",
    ]
    for key, title in (
        ("b1", "Throughput"),
        ("b2", "Slow endpoints"),
        ("b3", "Fan-out"),
        ("b4", "Cold start"),
        ("b5", "Local stack latency"),
    ):
        if key in note:
            lines += [f"**{title}.** " + " ".join(note[key]), ""]
    if "b6" in results:
        b6 = results["b6"]
        main = b6["scenarios"]["main"]
        lines += report._b6(b6, heading="### Cost per million events")
        biggest = sorted(main["per_million"].items(), key=lambda kv: kv[1], reverse=True)[:3]
        per_delivery = b6["measured"]["dispatch"]["dynamodb_per_delivery"]
        transitions = b6["measured"]["retry_recovers"]["transitions"]
        lines += [
            "",
            f"**Reading:** at {money(main['total'])} per million events Hookline costs "
            f"{main['ratio_to_eventbridge']:.0f}{TIMES} EventBridge with API destinations "
            f"({money(main['eventbridge_total'])}); the biggest items are "
            + ", ".join(f"{name} ({money(value)})" for name, value in biggest)
            + f". Every delivery makes {per_delivery['requests']:.0f} DynamoDB requests ("
            + ", ".join(f"{v:g}{TIMES} {k}" for k, v in per_delivery["by_request"].items())
            + f") costing {per_delivery['wru']:.2f} WRU, {per_delivery['gsi_wru']:g} of them "
            "for the `by_webhook` index, its only one (the delivery item, under 1 KB, carries "
            "its first attempt, so a first-time success is one put and one index entry), and "
            "the failed first attempts at one webhook within a minute share one Standard "
            "workflow billed per state transition "
            f"({transitions:.2f} per failed delivery when the first retry succeeds, assuming "
            f"{b6['measured']['retry_recovers']['members']} per group). The front door alone "
            "(API Gateway REST and the WAF web ACL issue 12 put on its stage) is "
            + money(
                main["per_million"]["API Gateway REST (publish)"]
                + main["per_million"]["AWS WAF (web ACL on the stage)"]
            )
            + ". What $8 would take, from the same counted parts (not built: each gives up "
            "something issue 12 or the delivery log has): "
            + "; ".join(f"{name}: {money(value)}" for name, value in main["what_if"].items())
            + ". "
            f"**B7**, a delivery to an endpoint that fails every attempt, costs "
            f"{money(main['dead_delivery_total'])} per million: "
            + ", ".join(
                f"{name} {money(value)}"
                for name, value in sorted(
                    main["dead_delivery_per_million"].items(), key=lambda kv: -kv[1]
                )[:3]
            )
            + f" — assuming {b6['measured']['retry_never']['members']} such deliveries per "
            "retry group (1 per second, a 60 s window), which share one workflow. "
            "What EventBridge does not do for its price: take "
            "events from community platforms over plain HTTPS with an API key (PutEvents needs "
            "SigV4-signed AWS credentials, hence the front-door row), sign with Standard "
            "Webhooks, keep a per-attempt delivery log, or auto-disable dead endpoints.",
        ]
    return "\n".join(lines).rstrip() + "\n"
