"""Run the benchmark suite: ``python -m bench.run`` (``make bench``).

    python -m bench.run                    # everything, full size (< 15 min on 2 cores)
    python -m bench.run --only b2,b4       # some benchmarks, merged into the existing report
    python -m bench.run --quick            # tiny sizes (tests/benchmarks/test_bench_smoke.py)
    python -m bench.run --no-readme        # leave README.md alone

Writes bench/results/latest.md, latest.json and PNG plots, and the README's performance
section (between its markers) unless --quick, --no-readme or --out elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import harness, notes, report

RESULTS = harness.ROOT / "bench" / "results"
README = harness.ROOT / "README.md"
ORDER = ("b6", "b4", "b1", "b2", "b3", "b5")

FULL: dict[str, dict[str, Any]] = {
    "b1": {"events": 1000, "webhooks": 5, "rounds": 5, "capacity_requests": 10000},
    "b1_local": {"events": 200, "webhooks": 5},
    "b1_local_profile": {"events": 30},
    "b2": {
        "events": 20,
        "rate": 5.0,
        "timeout": 10.0,
        "rounds": 2,
        "sequential_events": 2,
        "local_events": 40,
    },
    "b3": {"events": 20, "rounds": 3},
    "b4": {"repeats": 10},
    "b5": {
        "rate": 50.0,
        "seconds": 30.0,
        "light_rate": 5.0,
        "light_seconds": 10.0,
        "webhooks": 1,
        "grace": 120.0,
    },
    "b6": {"batch": 100, "repeats": 20},
}

QUICK: dict[str, dict[str, Any]] = {
    "b1": {
        "events": 10,
        "webhooks": 2,
        "rounds": 1,
        "capacity_requests": 200,
        "capacity_rounds": 1,
        "capacity_kinds": ("bench",),
        "capacity_receivers": (1,),
    },
    "b1_local": {"events": 3, "webhooks": 1},
    "b1_local_profile": {},
    "b2": {"events": 2, "rate": 50.0, "timeout": 0.3, "rounds": 1, "sequential_events": 1},
    "b3": {"totals": (3, 6), "subscribed_counts": (1, 2), "events": 2, "rounds": 1},
    "b4": {"repeats": 1, "only": ["dispatch"], "warm": False, "importtime": False},
    "b5": {
        "rate": 10.0,
        "seconds": 0.5,
        "light_rate": 4.0,
        "light_seconds": 0.5,
        "webhooks": 1,
        "grace": 20.0,
        "publishers": 2,
    },
    "b6": {"batch": 5, "repeats": 2},
}


def run_one(key: str, sizes: dict[str, dict[str, Any]], log: Callable[[str], None]) -> Any:
    from bench import (
        b1_throughput,
        b2_isolation,
        b3_fanout,
        b4_coldstart,
        b5_latency,
        b6_cost,
    )

    started = time.monotonic()
    if key == "b1":
        result = b1_throughput.run(**sizes["b1"], log=log)
        result["local_stack"] = b1_throughput.local_stack_run(**sizes["b1_local"], log=log)
        if sizes["b1_local_profile"]:
            log("B1: profiling the local stack")
            result["local_stack"]["profile"] = b1_throughput.profile_local_stack(
                **sizes["b1_local_profile"]
            )
    else:
        module = {
            "b2": b2_isolation,
            "b3": b3_fanout,
            "b4": b4_coldstart,
            "b5": b5_latency,
            "b6": b6_cost,
        }[key]
        result = module.run(**sizes[key], log=log)
    result["elapsed_s"] = time.monotonic() - started
    log(f"{key}: done in {result['elapsed_s']:.1f} s")
    return result


def render(out: Path, *, readme: bool) -> int:
    """Write latest.md, the plots and the README section again from ``out``/latest.json."""
    data = json.loads((out / "latest.json").read_text())
    results, meta = data["results"], data["meta"]
    meta["notes"] = notes.notes(results)
    report.write(results, meta, out)
    if readme and not meta.get("quick") and out.resolve() == RESULTS.resolve():
        report.replace_readme_section(README, notes.readme(results, meta))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. b1,b4")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    parser.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    parser.add_argument(
        "--render", action="store_true", help="only re-render the report from latest.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(args.out, readme=not args.no_readme)
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    selected = [k.strip() for k in args.only.split(",") if k.strip()] or list(ORDER)
    unknown = sorted(set(selected) - set(ORDER))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    sizes = QUICK if args.quick else FULL

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_start = list(os.getloadavg())
    results: dict[str, Any] = {}
    previous = args.out / "latest.json"
    if args.only and previous.is_file():
        results.update(json.loads(previous.read_text()).get("results", {}))
    log(f"bench: {harness.machine_line()}; running {', '.join(selected)}")
    for key in ORDER:
        if key in selected:
            results[key] = run_one(key, sizes, log)
    meta: dict[str, Any] = {
        "finished": report.now_text(),
        "elapsed_s": time.monotonic() - started,
        "machine": harness.machine(),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "selected": selected,
    }
    meta["notes"] = notes.notes(results)
    paths = report.write(results, meta, args.out)
    log(f"bench: wrote {', '.join(str(p) for p in paths.values())}")
    if not (args.quick or args.no_readme) and args.out.resolve() == RESULTS.resolve():
        report.replace_readme_section(README, notes.readme(results, meta))
        log(f"bench: updated the performance section of {README}")
    log(f"bench: finished in {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
