"""What a handler's cold start builds and patches (issue 11, B4). Each handler is imported in a
fresh interpreter with a Lambda-like environment, tracing on. (How long that takes is measured
by bench/b4_coldstart.py, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in ROOT.glob("functions/*/app.py"))


def _in_lambda(function: str, probe: str, cwd: Path) -> Any:
    """Import ``function``'s handler as the Lambda runtime does, run ``probe`` after it, and
    return the JSON the probe printed last."""
    fn_dir = ROOT / "functions" / function
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": str(fn_dir),
        "AWS_LAMBDA_FUNCTION_NAME": f"hookline-{function}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "RETRY_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:retry",
    }
    code = f"import sys\nsys.path[:0] = [{str(fn_dir)!r}, {str(ROOT)!r}]\nimport app\n{probe}"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_BUILT = """
import json
from hookline import wiring
from hookline.adapters import dynamodb
from hookline.domain import models
wiring.services()
built = sorted(
    name for name, value in vars(models).items()
    if isinstance(value, type) and issubclass(value, models.Record)
    and value.__pydantic_complete__
)
clients = dynamodb.client.cache_info().currsize
event = models.Event.model_validate(
    {"id": "evt_1", "community_id": "com_1", "event": "member.created", "data": {},
     "timestamp": "2026-01-01T00:00:00Z"}
)
print(json.dumps({
    "built": built,
    "clients": clients,
    "event_built_on_use": models.Event.__pydantic_complete__ and event.id == "evt_1",
}))
"""


@pytest.mark.parametrize("function", HANDLERS)
def test_a_cold_start_builds_no_client_and_no_validator(function: str, tmp_path: Path) -> None:
    """Importing a function and building its services creates no AWS client and no pydantic
    validator; the first request that needs one builds it."""
    probe = _in_lambda(function, _BUILT, tmp_path)
    assert probe == {"built": [], "clients": 0, "event_built_on_use": True}


_UNNEEDED = ("boto3", "s3transfer", "aws_lambda_powertools.utilities.parser")


@pytest.mark.parametrize("function", HANDLERS)
def test_no_function_imports_what_no_request_uses(function: str, tmp_path: Path) -> None:
    """Neither the cold start nor the first DynamoDB client imports:

    * boto3: every adapter uses botocore's own clients, so boto3's resource layer and
      s3transfer (with multiprocessing) stay out;
    * powertools' parser models: the batch utility builds dozens of pydantic models at import
      when pydantic is already imported (``utilities.batch.types``), so a function that uses it
      imports it before anything imports pydantic."""
    probe = _in_lambda(
        function,
        "import json, sys\nfrom hookline import wiring\nfrom hookline.adapters import dynamodb\n"
        "wiring.services()\ndynamodb.client()\n"
        f"print(json.dumps(sorted(m for m in {_UNNEEDED!r} if m in sys.modules)))",
        tmp_path,
    )
    assert probe == []


@pytest.mark.parametrize("function", HANDLERS)
def test_a_handler_imports_with_the_collector_paused_then_resumed(
    function: str, tmp_path: Path
) -> None:
    """The imports run with the cyclic collector paused (hookline.coldstart); afterwards it is
    running again, with what the imports made frozen out of its way."""
    probe = _in_lambda(
        function,
        "import gc, json\nprint(json.dumps([gc.isenabled(), gc.get_freeze_count() > 10_000]))",
        tmp_path,
    )
    assert probe == [True, True]


_PATCHED = """
import json
import botocore.client
from aws_xray_sdk.core import patcher
from hookline import observability
print(json.dumps({
    "disabled": observability.tracer.disabled,
    "patched": sorted(patcher._PATCHED_MODULES),
    "aws_sdk": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
}))
"""


def test_in_lambda_the_tracer_patches_the_aws_sdk_and_nothing_else(tmp_path: Path) -> None:
    """With active tracing the AWS SDK calls are traced (botocore patched at import). Nothing
    else is: patching every library X-Ray knows (requests, sqlite3, httpx...) imports each of
    them at cold start, and a traced requests call would record its full URL (delivery
    attempts have their own subsegment, which records the host only)."""
    probe = _in_lambda("dispatch", _PATCHED, tmp_path)
    assert probe == {"disabled": False, "patched": ["botocore"], "aws_sdk": True}


def test_the_authorizer_loads_no_delivery_code(tmp_path: Path) -> None:
    """Services are made on first use: building them for the authorizer, whose requests only
    read API keys, imports neither the delivery code nor the HTTP sender."""
    probe = _in_lambda(
        "authorizer",
        "import json, sys\nfrom hookline import wiring\nwiring.services().tables\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in ("
        "'hookline.domain.delivery', 'hookline.domain.retry', 'hookline.adapters.http_attempt'"
        "))))",
        tmp_path,
    )
    assert probe == []


def test_the_api_loads_idempotency_only_for_a_request_with_the_header(tmp_path: Path) -> None:
    """powertools idempotency (and its DynamoDB store) is imported by the first request that
    carries an Idempotency-Key (hookline.api.once), not by the cold start."""
    probe = _in_lambda(
        "api",
        "import json, sys\nfrom hookline import wiring\nwiring.services()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('aws_lambda_powertools.utilities.idempotency', 'hookline.api.once')))))",
        tmp_path,
    )
    assert probe == []
