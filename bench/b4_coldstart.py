"""B4 — cold start.

Each function's handler module (functions/<name>/app.py) is imported in a fresh interpreter the
way the Lambda runtime does it (the function's directory and the layer on sys.path, ``import
app``), in an environment that resembles Lambda's:

* the variables the runtime sets (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...) and the
  template's powertools settings, so powertools and the X-Ray SDK behave as in Lambda (tracing
  on; without LAMBDA_TASK_ROOT the X-Ray SDK would build a sampler with two X-Ray clients);
* only the packages Lambda has: the runtime's boto3 and the layer's requirements. Anything
  else installed in this virtualenv (awscrt and pyOpenSSL, which botocore picks up when
  present, and every development tool) cannot be imported;
* bytecode compiled beforehand (a warm-up run writes it to a scratch PYTHONPYCACHEPREFIX), as
  the layer ships it (layers/hookline/Makefile compiles it; tests/deploy/test_layer.py checks);
* an interpreter started without this virtualenv's .pth files (``-S``, then ``site`` imported
  and site-packages put on sys.path by hand): the editable install's finder they load would
  add the same ~10 ms to both sides and import pathlib, re and urllib.parse for them, which
  the Lambda runtime does not.

Measured per run: wall and CPU time of the whole child process (interpreter start + import + the
first ``wiring.services()``, which makes the tables adapter, importing botocore, and leaves the
other adapters and every AWS client to their first use), the import time inside the child, and
peak RSS. The child leaves with ``os._exit`` after reporting: a cold start ends at the first
request, not at interpreter shutdown. The baseline is ``import boto3`` measured the same way in
the same interleaved rounds. Apart from the rounds, ``first_client_ms`` times the DynamoDB
client that every function's first request creates, and ``ready_ratio`` adds it to the cold
start; the same runs time compiling the source of every module of the layer they loaded
(``layer_compile_ms``, CPU): what each cold start would add if the layer shipped no bytecode.

The floor: what importing only the stack's mandated pieces costs, measured the same way in the
same rounds, so the target can be read against it. ``floor`` is what ApiFunction's stack
mandates (boto3, a pydantic v2 model, powertools Logger, Metrics and Tracer with botocore
patched, which loads the X-Ray SDK under active tracing, and the REST event handler with
validation); ``floor without event handler`` is the same less the event handler, which is what
the other functions' stack mandates. Its ``first_client_ms`` is ``boto3.client("dynamodb")``.

One extra ``python -X importtime`` run per function lists the slowest imports and checks that no
heavy module (moto, cfn-lint, SAM translator, OpenAPI/Swagger generation, the local stack,
matplotlib) is on a Lambda import path — naming the import chain that pulls one in if it is.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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

#: The floor: only what the stack mandates, nothing of Hookline's (see the module docstring).
_FLOOR_CORE = """
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from pydantic import BaseModel, ConfigDict, Field

class Floor(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str = Field(min_length=1)

Logger(service="floor")
Metrics(namespace="Floor", service="floor")
Tracer(service="floor", patch_modules=("botocore",))
"""
FLOORS = {
    "floor": _FLOOR_CORE
    + """
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
APIGatewayRestResolver(enable_validation=True)
""",
    "floor without event handler": _FLOOR_CORE,
}

#: Modules that must never load in a Lambda handler's import (prefix match).
HEAVY = (
    "moto",
    "cfnlint",
    "samtranslator",
    "samcli",
    "hookline_dev",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "matplotlib",
    "yaml",
    "pytest",
)

_CHILD = r"""
import os, site, sys, time  # site: what every interpreter imports, Lambda's too (no .pth here)
sys.path.append(sys.argv[6])
started = time.perf_counter()
absent = frozenset(os.environ.pop("HOOKLINE_B4_ABSENT").split())

class NotInLambda:
    "Packages of this virtualenv that neither the Lambda runtime nor the layer has."

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInLambda)
target = sys.argv[1]
if target == "boto3":
    import boto3
    imported = time.perf_counter()
    init = first_client = imported
elif target.startswith("floor"):
    exec(os.environ.pop("HOOKLINE_B4_FLOOR"), {})
    imported = init = first_client = time.perf_counter()
    if sys.argv[5] == "1":
        import boto3
        boto3.client("dynamodb")
        first_client = time.perf_counter()
else:
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    import app
    imported = time.perf_counter()
    from hookline import wiring
    wiring.services()
    init = time.perf_counter()
    first_client = init
    if sys.argv[5] == "1":
        from hookline.adapters import dynamodb
        dynamodb.client()
        first_client = time.perf_counter()
import json, re
# What a cold start would spend compiling the layer's modules it loaded, had they no bytecode.
layer = frozenset(os.environ.pop("HOOKLINE_B4_LAYER").split())
sources = [m.__file__ for n, m in list(sys.modules.items()) if n.partition(".")[0] in layer
           and str(getattr(m, "__file__", None)).endswith(".py")]
compiling = time.process_time()
if sys.argv[5] == "1":
    for path in sources:
        with open(path, "rb") as source:
            compile(source.read(), path, "exec", dont_inherit=True)
heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in
               json.loads(sys.argv[4])))
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "init_ms": (init - imported) * 1000,
    "first_client_ms": (first_client - init) * 1000,
    # VmHWM, not ru_maxrss: Linux carries the forking parent's peak RSS into ru_maxrss.
    "rss_mb": int(re.search(r"VmHWM:\s*(\d+)", open("/proc/self/status").read())[1]) / 1024,
    "modules": len(sys.modules),
    "layer_modules": len(sources),
    "layer_compile_ms": (time.process_time() - compiling) * 1000,
    "heavy": heavy,
}))
# A cold start ends at the first request, not at interpreter shutdown (whose final collections
# and module teardown grow with what was imported): neither side is timed tearing down.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


#: What the Lambda Python runtime provides (boto3 and its dependencies come with it).
RUNTIME_PROVIDED = ("boto3",)
LAYER_REQUIREMENTS = harness.ROOT / "layers" / "hookline" / "requirements.txt"


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions ``requirements`` pull in, extras and markers evaluated."""
    found: set[str] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for wanted in ["", *requirement.extras]:
            key = f"{name}[{wanted}]"
            if key in found:
                continue
            found.add(key)
            pending += [(Requirement(text), wanted) for text in dist.requires or []]
    return {key.partition("[")[0] for key in found}


def absent_modules() -> list[str]:
    """Top-level modules installed here that a deployed function cannot import: everything
    outside the runtime's boto3 and the layer's requirements (e.g. awscrt and pyOpenSSL, which
    botocore would otherwise import, and every development tool)."""
    lines = LAYER_REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    wanted = [line for line in (raw.split("#")[0].strip() for raw in lines) if line]
    present = _closure([*RUNTIME_PROVIDED, *wanted]) | {"hookline"}
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if not {canonicalize_name(d) for d in dists} & present
    )


def layer_modules() -> list[str]:
    """Top-level modules the layer ships: hookline and its requirements' closure, less what the
    layer's Makefile removes again because the runtime provides it (its RUNTIME_PROVIDED)."""
    lines = LAYER_REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    wanted = [line for line in (raw.split("#")[0].strip() for raw in lines) if line]
    makefile = (LAYER_REQUIREMENTS.parent / "Makefile").read_text(encoding="utf-8")
    removed = re.search(r"^RUNTIME_PROVIDED := (.*)$", makefile, re.MULTILINE)
    assert removed is not None, "layers/hookline/Makefile names no RUNTIME_PROVIDED"
    shipped = _closure(wanted) - {canonicalize_name(name) for name in removed[1].split()}
    return sorted(
        {"hookline"}
        | {
            module
            for module, dists in metadata.packages_distributions().items()
            if {canonicalize_name(d) for d in dists} & shipped
        }
    )


def functions() -> list[str]:
    """The function directories that have a handler (functions/<name>/app.py)."""
    return sorted(p.parent.name for p in (harness.ROOT / "functions").glob("*/app.py"))


def _is_function(name: str) -> bool:
    return name != "boto3" and name not in FLOORS


def _env(name: str, fn_dir: str, pycache: str, compile_: bool, absent: list[str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POWERTOOLS_", "PYTHON")) and key != "AWS_LAMBDA_FUNCTION_NAME"
    }
    env.update(
        {
            # What the Lambda runtime sets. LAMBDA_TASK_ROOT matters: without it the X-Ray SDK
            # takes itself to be outside Lambda and builds a centralised sampler with two
            # botocore X-Ray clients at import, which Lambda never does.
            "LAMBDA_TASK_ROOT": fn_dir or "/var/task",
            "_HANDLER": "app.lambda_handler",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
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
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "RETRY_STATE_MACHINE_ARN": (
                "arn:aws:states:us-east-1:123456789012:stateMachine:hookline-retry"
            ),
            # Bytecode lives in a scratch cache: a warm-up run compiles it, as a layer built with
            # its .pyc files would ship it, and the repository gets no __pycache__.
            "PYTHONPYCACHEPREFIX": pycache,
            "HOOKLINE_B4_ABSENT": " ".join(absent),
            "HOOKLINE_B4_LAYER": " ".join(_layer()),
        }
    )
    if name in FLOORS:
        env["HOOKLINE_B4_FLOOR"] = FLOORS[name]
    if not compile_:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@functools.lru_cache(maxsize=1)
def _absent() -> list[str]:
    return absent_modules()


@functools.lru_cache(maxsize=1)
def _layer() -> list[str]:
    return layer_modules()


def _spawn(
    name: str,
    pycache: str,
    *,
    importtime: bool = False,
    compile_: bool = False,
    client: bool = False,
) -> tuple[float, dict[str, Any], str]:
    """One cold import of ``name`` (a function, "boto3" or a floor) in a fresh interpreter,
    reading bytecode from ``pycache`` (and writing it there when ``compile_``). With ``client``,
    the child also creates the DynamoDB client every function's first request creates."""
    fn_dir = str(harness.ROOT / "functions" / name) if _is_function(name) else ""
    args = [sys.executable, "-S"]
    if importtime:
        args += ["-X", "importtime"]
    args += ["-c", _CHILD, name, fn_dir, str(harness.ROOT), json.dumps(HEAVY), str(int(client))]
    args.append(sysconfig.get_path("purelib"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and child script
        args,
        capture_output=True,
        text=True,
        env=_env(name, fn_dir, pycache, compile_, _absent()),
        cwd="/",
        timeout=120,
        check=False,
    )
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"importing {name} failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    # CPU time of the child: less sensitive than wall time to other work on a shared machine.
    data["cpu_ms"] = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
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
    targets = ["boto3", *FLOORS, *names]
    walls: dict[str, list[float]] = {t: [] for t in targets}
    data: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    log(f"B4: cold start of {', '.join(names)} and the floor vs import boto3 ({repeats} rounds)")
    with tempfile.TemporaryDirectory(prefix="hookline-b4-") as scratch:
        pycache = os.path.join(scratch, "pycache")
        if warm:  # compile to bytecode and warm the page cache; not reported
            for target in targets:
                _spawn(target, pycache, compile_=True)
        for index in range(repeats):
            order = targets if index % 2 == 0 else list(reversed(targets))
            for target in order:
                wall, child, _ = _spawn(target, pycache, compile_=not warm)
                walls[target].append(wall)
                data[target].append(child)
        # Clients are created lazily, by the first request that needs one: timed apart from
        # the cold start above, so it is reported, not hidden.
        # The same runs also time compiling the layer's modules they loaded: what a cold start
        # would add if the layer shipped no bytecode.
        client_runs = {
            target: [_spawn(target, pycache, client=True)[1] for _ in range(min(3, repeats))]
            for target in targets[1:]
        }
        rows_of = {
            target: _import_tree(_spawn(target, pycache, importtime=True)[2])
            for target in (targets if importtime else [])
        }
    baseline_wall = harness.summary(walls["boto3"])["median"]
    baseline_cpu = harness.summary([d["cpu_ms"] for d in data["boto3"]])["median"]
    baseline_import = harness.summary([d["import_ms"] for d in data["boto3"]])["median"]
    entries: dict[str, Any] = {}
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
        if target != "boto3":
            runs = client_runs[target]
            entry["first_client_ms"] = harness.summary([r["first_client_ms"] for r in runs])
            entry["layer_compile_ms"] = harness.summary([r["layer_compile_ms"] for r in runs])
            entry["layer_modules"] = runs[0]["layer_modules"]
            # Until the first request can call DynamoDB: the cold start plus that client.
            entry["ready_ratio"] = (
                entry["wall_ms"]["median"] + entry["first_client_ms"]["median"]
            ) / baseline_wall
        entry["cpu_ms"] = harness.summary([d["cpu_ms"] for d in data[target]])
        entry["cpu_ratio"] = entry["cpu_ms"]["median"] / baseline_cpu
        rows = rows_of.get(target, [])
        if rows:
            entry["by_package"] = by_package(rows)
        if _is_function(target):
            heavy = data[target][0]["heavy"]
            entry["heavy"] = {module: import_chain(rows, module) for module in heavy}
            entry["slowest_imports"] = slowest_imports(rows)
            entry["notable"] = notable_imports(rows)
            entry["met"] = entry["wall_ratio"] <= TARGET_RATIO and not heavy
        entries[target] = entry
    per_function = {target: entries[target] for target in ["boto3", *names]}
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
        # The same figures for importing only what the stack mandates (FLOORS).
        "floor": {name: entries[name] for name in FLOORS},
        "target": f"wall time of each function <= {TARGET_RATIO} x `python -c 'import boto3'`, "
        "and no heavy import on a Lambda path",
        "met": all(per_function[n]["met"] for n in names),
        "heavy_found": {n: per_function[n]["heavy"] for n in names if per_function[n]["heavy"]},
    }


if __name__ == "__main__":
    print(json.dumps(run(repeats=2), indent=1, default=str))
