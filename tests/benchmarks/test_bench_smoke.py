"""Every benchmark once at a tiny size, so `make bench` cannot rot. No timing assertions: only
that each runs end to end, delivers everything it should and renders its report section."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import (
    b1_throughput,
    b2_isolation,
    b3_fanout,
    b4_coldstart,
    b5_latency,
    b6_cost,
    dynamodb_units,
    harness,
    notes,
    report,
)
from bench import run as bench_run
from bench.localstack import local_stack
from bench.receiver import ReceiverFarm, blast

QUICK = bench_run.QUICK


def _quiet(_: str) -> None:
    pass


def _render(key: str, result: dict[str, Any]) -> str:
    meta = {
        "finished": "now",
        "elapsed_s": 1.0,
        "machine": harness.machine(),
        "load_start": [0.0, 0.0, 0.0],
        "load_end": [0.0, 0.0, 0.0],
        "notes": notes.notes({key: result}),
    }
    text = report.markdown({key: result}, meta)
    assert text.startswith("# Hookline benchmark report")
    assert "n/a" not in text.split("## Summary")[1].split("\n\n")[1]
    return text


def test_receiver_farm_records_and_serves_the_bare_client() -> None:
    with ReceiverFarm(2, hold={1: 0.2}) as farm:
        result = blast(farm.ports[:1], 50, connections=4)
        assert result.errors == 0 and result.requests == 50
        assert farm.wait_for(50, timeout=5) == 50
        records = farm.records()
        assert {index for _, index, _ in records} == {0}
        assert all(event_id is None for _, _, event_id in records)  # not JSON with an id
        farm.clear()
        assert farm.count() == 0


def test_b1_throughput_smoke() -> None:
    result = b1_throughput.run(**QUICK["b1"], log=_quiet)
    deliveries = result["workload"]["deliveries"]
    assert result["lost"] == 0 and result["failed"] == 0
    for run in result["runs"]["engine"] + result["runs"]["baseline"]:
        assert run["delivered"] == deliveries and run["received"] == deliveries
    assert result["signatures_checked"] > 0
    assert result["signatures_valid"] == result["signatures_checked"]
    assert result["receiver_capacity"]["bench_1"]["median"] > 0
    assert result["profile"]["groups"]
    assert "## B1" in _render("b1", result)


def test_b2_isolation_smoke() -> None:
    result = b2_isolation.run(**QUICK["b2"], log=_quiet)
    for name, variant in result["variants"].items():
        assert variant["lost"] == 0, name
        assert not math.isnan(variant["p99_ms"]["median"]), name
    assert set(result["p99_ratio"]) == {
        "engine stream",
        "engine burst",
        "local stack",
        "sequential",
    }
    assert "## B2" in _render("b2", result)
    assert "through `hookline local`" in _render("b2", result)


def test_b3_fanout_smoke(tmp_path: Path) -> None:
    result = b3_fanout.run(**QUICK["b3"], log=_quiet)
    assert result["lost"] == 0
    for rows in result["runs"].values():
        assert all(row["delivered"] == row["expected"] for row in rows)
    b3_fanout.plot(result, str(tmp_path / "b3.png"))
    assert (tmp_path / "b3.png").read_bytes()[:4] == b"\x89PNG"
    assert "## B3" in _render("b3", result)


def test_b4_coldstart_smoke() -> None:
    result = b4_coldstart.run(**QUICK["b4"], log=_quiet)
    dispatch = result["functions"]["dispatch"]
    assert dispatch["modules"] > result["functions"]["boto3"]["modules"]
    assert dispatch["rss_mb"]["median"] > 0
    assert dispatch["heavy"] == {}
    # The floor imports the stack alone: more than boto3, less with no event handler.
    floor = result["floor"]
    assert floor["floor"]["modules"] > floor["floor without event handler"]["modules"]
    assert floor["floor without event handler"]["modules"] > result["functions"]["boto3"]["modules"]
    assert floor["floor"]["ready_ratio"] > floor["floor"]["wall_ratio"]
    rendered = _render("b4", result)
    assert "## B4" in rendered
    assert "| *floor* |" in rendered


def test_b4_names_the_import_chain_of_a_heavy_module() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |       moto.core",
            "import time:       200 |        300 |     moto",
            "import time:        50 |        350 |   hookline_dev.template",
            "import time:        10 |         10 |   json",
            "import time:        40 |        400 | app",
        ]
    )
    rows = b4_coldstart._import_tree(stderr)
    assert rows[0] == (3, 100, 100, "moto.core")
    assert b4_coldstart.import_chain(rows, "moto") == [
        "app",
        "hookline_dev.template",
        "moto",
    ]
    assert b4_coldstart.slowest_imports(rows, 1) == [{"module": "app", "cumulative_ms": 0.4}]


def test_local_stack_runs_of_b1_and_b5_smoke() -> None:
    with ReceiverFarm(1) as farm, local_stack(farm.urls[:1]) as client:
        b1_local = b1_throughput.local_stack_run(
            **QUICK["b1_local"], stack=(farm, client), log=_quiet
        )
        result = b5_latency.run(**QUICK["b5"], stack=(farm, client), log=_quiet)
    assert b1_local["lost"] == 0 and b1_local["received"] == b1_local["deliveries"]
    assert result["published"] == result["workload"]["events"]
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["publish_errors"] == 0
    assert result["light"]["lost"] == 0
    assert "## B5" in _render("b5", result)
    figures = report.summary({"b5": result}, {"quick": True})
    assert figures["local_publish_per_s"] == round(result["achieved_publish_rate"], 1)
    assert figures["B5_p99_ms"] == round(result["p99_ms"], 1)
    assert figures["B5_lost"] == 0


def test_b6_cost_model_counts_the_real_paths() -> None:
    result = b6_cost.run(**QUICK["b6"], log=_quiet)
    template = result["template"]
    assert template["memory_mb"]["DispatchFunction"] >= 128
    assert template["dispatch_batch_size"] >= 1
    measured = result["measured"]
    assert measured["publish"]["dynamodb"]["by_request"].get("events.put") == 1
    assert measured["dispatch"]["dynamodb_per_delivery"]["wru"] > 0
    # One workflow per retry group, amortised over its members.
    assert measured["retry_recovers"]["states"][-2:] == ["Done?", "Done"]
    assert measured["retry_never"]["groups"] == 1 and measured["retry_never"]["members"] == 60
    assert measured["retry_never"]["transitions"] == pytest.approx(
        measured["retry_never"]["transitions_per_group"] / 60
    )
    # The batch route stores every event of its request (one put each) for one front-door
    # request, so the per-request parts shrink with the batch and the per-event ones do not.
    batch = measured["publish_batch"]
    assert batch["events_per_request"] == b6_cost.PUBLISH_BATCH
    assert batch["dynamodb"]["by_request"]["events.put"] == 1
    batched = result["scenarios"][f"batches of {b6_cost.PUBLISH_BATCH} (POST .../events/batch)"]
    main = result["scenarios"]["main"]
    assert main["total"] == pytest.approx(sum(main["per_million"].values()))
    front_door = main["per_million"]["API Gateway REST (publish)"]
    assert batched["per_million"]["API Gateway REST (publish)"] == pytest.approx(
        front_door / b6_cost.PUBLISH_BATCH
    )
    # The template puts a web ACL on the stage by default: every request pays its fee.
    assert template["waf"] is True
    assert main["per_million"]["AWS WAF (web ACL on the stage)"] == pytest.approx(0.60)
    assert list(main["what_if"].values()) == sorted(main["what_if"].values(), reverse=True)
    assert "Cost per million events" in notes.readme(
        {"b6": result},
        {"finished": "now", "machine": harness.machine(), "load_start": [0.0]},
    )
    assert "## B6" in _render("b6", result)


def test_item_size_follows_dynamodb_rules() -> None:
    assert dynamodb_units.item_size({"pk": "C#1"}) == 2 + 3
    assert dynamodb_units.attribute_size(12345) == 4  # 5 digits -> ceil(5/2) + 1
    assert dynamodb_units.attribute_size(True) == 1
    assert dynamodb_units.attribute_size({"a": "xy"}) == 3 + 1 + 2 + 1


def test_run_cli_quick_writes_the_report_and_leaves_the_readme(tmp_path: Path) -> None:
    readme = bench_run.README.read_text()
    assert bench_run.main(["--quick", "--only", "b3", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    assert "b3" in data["results"] and data["meta"]["quick"] is True
    assert (tmp_path / "latest.md").read_text().startswith("# Hookline benchmark report")
    assert (tmp_path / "b3_fanout.png").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["quick"] is True
    assert bench_run.README.read_text() == readme


def test_readme_section_replacement(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{report.README_START}\nold\n{report.README_END}\nb\n")
    report.replace_readme_section(readme, "new $1 \\1 text")
    assert readme.read_text() == (
        f"a\n{report.README_START}\nnew $1 \\1 text\n{report.README_END}\nb\n"
    )
