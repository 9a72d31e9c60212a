"""B4 — cold start.

Each function's handler module (functions/<name>/app.py) is imported in a fresh interpreter the
way the Lambda runtime does it (the function's directory and the layer on sys.path, ``import
app``), with a Lambda-like environment (AWS_LAMBDA_FUNCTION_NAME etc., so powertools behaves as
in Lambda). Measured per run: wall time of the whole child process (interpreter start + import
+ init), the import time inside the child, the first ``wiring.services()`` build (the AWS
clients a first invocation creates), and peak RSS (resource.getrusage in the child). The
baseline is ``python -c "import boto3"`` measured the same way in the same rounds.

One extra ``python -X importtime`` run per function lists the slowest imports and checks that no
heavy module (moto, cfn-lint, SAM translator, OpenAPI/Swagger generation, the local stack,
matplotlib) is on a Lambda import path — naming the import chain that pulls one in if it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import harness

TARGET_RATIO = 1.5

#: Big imports worth following per handler: cumulative time and who imports them.
NOTABLE = (
    "boto3",
    "aws_xray_sdk.core",
    "aws_lambda_powertools.event_handler",
    "pydantic",
    "hookline.domain.models",
)

#: Modules that must never load in a Lambda handler's import (prefix match).
HEAVY = (
    "moto",
    "cfnlint",
    "samtranslator",
    "samcli",
    "hookline.local",
    "hookline.adapters.template",
    "hookline.api.openapi",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "matplotlib",
    "yaml",
    "pytest",
)

_CHILD = r"""
import json, os, resource, sys, time
started = time.perf_counter()
target = sys.argv[1]
if target == "boto3":
    import boto3
    imported = time.perf_counter()
    init = imported
else:
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    import app
    imported = time.perf_counter()
    from hookline import wiring
    wiring.services()
    init = time.perf_counter()
heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in
               json.loads(sys.argv[4])))
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "init_ms": (init - imported) * 1000,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "modules": len(sys.modules),
    "heavy": heavy,
}))
"""


def functions() -> list[str]:
    """The function directories that have a handler (functions/<name>/app.py)."""
    return sorted(p.parent.name for p in (harness.ROOT / "functions").glob("*/app.py"))


def _env(name: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POWERTOOLS_", "PYTHON")) and key != "AWS_LAMBDA_FUNCTION_NAME"
    }
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"hookline-{name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_SERVICE_NAME": "hookline",
            "POWERTOOLS_METRICS_NAMESPACE": "Hookline",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "RETRY_STATE_MACHINE_ARN": (
                "arn:aws:states:us-east-1:123456789012:stateMachine:hookline-retry"
            ),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _spawn(name: str, *, importtime: bool = False) -> tuple[float, dict[str, Any], str]:
    fn_dir = str(harness.ROOT / "functions" / name) if name != "boto3" else ""
    args = [sys.executable]
    if importtime:
        args += ["-X", "importtime"]
    args += ["-c", _CHILD, name, fn_dir, str(harness.ROOT), json.dumps(HEAVY)]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and child script
        args, capture_output=True, text=True, env=_env(name), cwd="/", timeout=120, check=False
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"importing {name} failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, data, done.stderr


def _import_tree(stderr: str) -> list[tuple[int, int, int, str]]:
    """-X importtime lines as (depth, self us, cumulative us, module), in print order. A line is
    ``import time: <self> | <cumulative> | <two spaces per level><module>``."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        name = parts[2][1:]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((depth, int(parts[0]), int(parts[1]), name.strip()))
    return rows


def import_chain(rows: list[tuple[int, int, int, str]], module: str) -> list[str]:
    """The chain of imports that loaded ``module`` (top-level first). -X importtime prints a
    module after everything it imported, indented one level deeper than its importer."""
    for index, (depth, _, _, name) in enumerate(rows):
        if name != module:
            continue
        chain = [name]
        want = depth - 1
        for later_depth, _, _, later in rows[index + 1 :]:
            if want < 0:
                break
            if later_depth == want:
                chain.append(later)
                want -= 1
        return list(reversed(chain))
    return []


def slowest_imports(rows: list[tuple[int, int, int, str]], limit: int = 8) -> list[dict[str, Any]]:
    """The top-level-ish imports (depth <= 1) with the largest cumulative time."""
    picked = [r for r in rows if r[0] <= 1]
    picked.sort(key=lambda r: r[2], reverse=True)
    return [{"module": name, "cumulative_ms": cum / 1000} for _, _, cum, name in picked[:limit]]


def notable_imports(rows: list[tuple[int, int, int, str]]) -> dict[str, Any]:
    """Cumulative import time of the NOTABLE modules and the chain that first imports each."""
    out: dict[str, Any] = {}
    for module in NOTABLE:
        found = [row for row in rows if row[3] == module]
        if found:
            out[module] = {
                "cumulative_ms": found[0][2] / 1000,
                "chain": import_chain(rows, module),
            }
    return out


def by_package(rows: list[tuple[int, int, int, str]], limit: int = 8) -> list[dict[str, Any]]:
    """Own import time summed by top-level package: where an import's time goes."""
    totals: dict[str, int] = {}
    for _, self_us, _, name in rows:
        top = name.split(".")[0]
        totals[top] = totals.get(top, 0) + self_us
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    return [{"package": name, "self_ms": us / 1000} for name, us in ranked[:limit]]


def run(
    *,
    repeats: int = 10,
    only: list[str] | None = None,
    warm: bool = True,
    importtime: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    names = [name for name in functions() if only is None or name in only]
    targets = ["boto3", *names]
    walls: dict[str, list[float]] = {t: [] for t in targets}
    data: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    log(f"B4: cold start of {', '.join(names)} vs import boto3 ({repeats} rounds)")
    if warm:
        _spawn("boto3")  # warm the page cache (not reported)
    for index in range(repeats):
        order = targets if index % 2 == 0 else list(reversed(targets))
        for target in order:
            wall, child, _ = _spawn(target)
            walls[target].append(wall)
            data[target].append(child)
    baseline_wall = harness.summary(walls["boto3"])["median"]
    baseline_import = harness.summary([d["import_ms"] for d in data["boto3"]])["median"]
    per_function: dict[str, Any] = {}
    for target in targets:
        entry: dict[str, Any] = {
            "wall_ms": harness.summary(walls[target]),
            "import_ms": harness.summary([d["import_ms"] for d in data[target]]),
            "init_ms": harness.summary([d["init_ms"] for d in data[target]]),
            "rss_mb": harness.summary([d["rss_mb"] for d in data[target]]),
            "modules": data[target][0]["modules"],
        }
        entry["wall_ratio"] = entry["wall_ms"]["median"] / baseline_wall
        entry["import_ratio"] = entry["import_ms"]["median"] / baseline_import
        if target == "boto3" and importtime:
            entry["by_package"] = by_package(_import_tree(_spawn("boto3", importtime=True)[2]))
        if target != "boto3":
            heavy = data[target][0]["heavy"]
            rows: list[tuple[int, int, int, str]] = []
            if importtime:
                _, child, stderr = _spawn(target, importtime=True)
                rows = _import_tree(stderr)
                heavy = child["heavy"]
            entry["heavy"] = {module: import_chain(rows, module) for module in heavy}
            entry["slowest_imports"] = slowest_imports(rows)
            entry["by_package"] = by_package(rows)
            entry["notable"] = notable_imports(rows)
            entry["met"] = entry["wall_ratio"] <= TARGET_RATIO and not heavy
        per_function[target] = entry
    missing = [
        name
        for name in ("api", "authorizer", "dispatch", "attempt", "inbound")
        if name not in functions()
    ]
    return {
        "name": "B4 cold start",
        "machine": harness.machine(),
        "workload": {"repeats": repeats, "functions": names, "missing": missing},
        "functions": per_function,
        "target": f"wall time of each function <= {TARGET_RATIO} x `python -c 'import boto3'`, "
        "and no heavy import on a Lambda path",
        "met": all(per_function[n]["met"] for n in names),
        "heavy_found": {n: per_function[n]["heavy"] for n in names if per_function[n]["heavy"]},
    }


if __name__ == "__main__":
    print(json.dumps(run(repeats=2), indent=1, default=str))
