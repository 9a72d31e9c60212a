"""The README's receiver examples (Operations → Receiving webhooks) run against real deliveries:
the Python ones in-process, the Node one with `node` (skipped where it is not installed); the
peer docs' mistake (verifying a re-serialised body) is shown to fail."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hookline import clock, ids
from hookline.domain.delivery import build_request
from hookline.domain.models import Event, PreviousSecret, Webhook

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.index("<!-- operations:start -->"), text.index("<!-- operations:end -->")
    return text[start:end]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _delivery(
    secret: str, *, previous: str | None = None, now: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery's body and headers exactly as Hookline sends them."""
    stamp = clock.now_iso()
    webhook = Webhook(
        id=ids.new_id("wh"),
        community_id="com_1",
        url="https://example.com/hook",
        events=["*"],
        secret=secret,
        created_at=stamp,
        updated_at=stamp,
    )
    if previous:
        webhook = webhook.model_copy(
            update={
                "previous_secrets": [
                    PreviousSecret(
                        secret=previous, expires_at=clock.iso(clock.now().replace(year=2099))
                    )
                ],
            }
        )
    event = Event(
        id=ids.new_id("evt"),
        community_id="com_1",
        event="order.paid",
        data={"title": "Zoë's order", "price": 10.0, "items": [1, 2]},
        site_url="https://forum.example.com",
        timestamp=stamp,
    )
    return build_request(
        webhook, event, delivery_id="dlv_0001", attempt=1, now=now or datetime.now(UTC)
    )


# -- Python -------------------------------------------------------------------------------------


@pytest.fixture
def python_example(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    secret = _secret()
    monkeypatch.setenv("HOOKLINE_SECRET", secret)
    blocks = _blocks("python")
    assert len(blocks) == 2
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    namespace["secret"] = secret
    return namespace


def test_python_example_accepts_a_delivery_once(
    python_example: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = _delivery(python_example["secret"])
    receive = python_example["receive"]
    assert receive(headers, body) == 200
    assert receive(headers, body) == 200  # the retry of a handled delivery
    assert capsys.readouterr().out.count("order.paid") == 1
    assert python_example["receive_with_standardwebhooks"](headers, body) == 200


def test_python_example_refuses_what_it_must(python_example: dict[str, Any]) -> None:
    receive = python_example["receive"]
    body, headers = _delivery(python_example["secret"])
    assert receive(headers, body.replace(b"10.0", b"99.0")) == 401
    assert receive(headers, json.dumps(json.loads(body)).encode()) == 401  # re-serialised
    stale_body, stale = _delivery(
        python_example["secret"], now=datetime.fromtimestamp(time.time() - 301, UTC)
    )
    assert receive(stale, stale_body) == 401
    other_body, other = _delivery(_secret())
    assert receive(other, other_body) == 401
    assert python_example["receive_with_standardwebhooks"](other, other_body) == 401


# -- Node ---------------------------------------------------------------------------------------

_NODE_HARNESS = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const raw = Buffer.from(input.body, "base64");
const reserialised = Buffer.from(JSON.stringify(JSON.parse(raw.toString("utf8"))), "utf8");
console.log(JSON.stringify({
  raw: verifyHookline(input.headers, raw, input.secret),
  reserialised: verifyHookline(input.headers, reserialised, input.secret),
}));
"""


def _node(tmp_path: Path, secret: str, body: bytes, headers: dict[str, str]) -> dict[str, bool]:
    assert NODE is not None
    verify_block = next(b for b in _blocks("js") if "function verifyHookline" in b)
    script = tmp_path / "verify.js"
    script.write_text(verify_block + _NODE_HARNESS, encoding="utf-8")
    lowered = {k.lower(): v for k, v in headers.items()}  # Node lower-cases header names
    payload = json.dumps(
        {"secret": secret, "body": base64.b64encode(body).decode(), "headers": lowered}
    )
    result = subprocess.run(  # noqa: S603
        [NODE, str(script)], input=payload, capture_output=True, text=True, timeout=30, check=True
    )
    verdict: dict[str, bool] = json.loads(result.stdout)
    return verdict


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_example_verifies_the_raw_bytes_only(tmp_path: Path) -> None:
    secret = _secret()
    body, headers = _delivery(secret)
    # The raw bytes verify; JSON.stringify(JSON.parse(body)) writes 10.0 as 10: it does not.
    assert _node(tmp_path, secret, body, headers) == {"raw": True, "reserialised": False}
    assert _node(tmp_path, _secret(), body, headers)["raw"] is False
    stale_body, stale = _delivery(secret, now=datetime.fromtimestamp(time.time() - 301, UTC))
    assert _node(tmp_path, secret, stale_body, stale)["raw"] is False
    short = dict(headers, **{"webhook-signature": "v1,AAAA"})  # wrong length: false, no throw
    assert _node(tmp_path, secret, body, short)["raw"] is False


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_example_accepts_the_previous_secret_during_rotation(tmp_path: Path) -> None:
    old, new = _secret(), _secret()
    body, headers = _delivery(new, previous=old)
    assert len(headers["webhook-signature"].split()) == 2
    assert _node(tmp_path, old, body, headers)["raw"] is True
    assert _node(tmp_path, new, body, headers)["raw"] is True


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_express_example_parses(tmp_path: Path) -> None:
    assert NODE is not None
    blocks = _blocks("js")
    assert len(blocks) == 2
    for index, block in enumerate(blocks):
        script = tmp_path / f"block{index}.js"
        script.write_text(block, encoding="utf-8")
        subprocess.run([NODE, "--check", str(script)], check=True, timeout=30)  # noqa: S603
    assert "express.raw(" in blocks[1] and "JSON.stringify(req.body)" not in "".join(blocks)


# -- PHP ----------------------------------------------------------------------------------------


def test_php_example_reads_the_raw_body() -> None:
    [block] = _blocks("php")
    assert "file_get_contents('php://input')" in block
    assert "hash_equals(" in block and "hash_hmac('sha256'" in block
    assert "json_encode" not in block and "$_POST" not in block


@pytest.mark.skipif(shutil.which("php") is None, reason="php is not installed here")
def test_php_example_verifies(tmp_path: Path) -> None:
    [block] = _blocks("php")
    function = block[: block.index("$raw = file_get_contents")]
    secret = _secret()
    body, headers = _delivery(secret)
    script = tmp_path / "verify.php"
    script.write_text(
        function
        + "\n$in = json_decode(file_get_contents('php://stdin'), true);\n"
        + "echo hookline_verify($in['headers'], base64_decode($in['body']), $in['secret'])"
        + " ? 'yes' : 'no';\n",
        encoding="utf-8",
    )
    payload = json.dumps(
        {"secret": secret, "body": base64.b64encode(body).decode(), "headers": headers}
    )
    result = subprocess.run(  # noqa: S603
        ["php", str(script)],  # noqa: S607
        input=payload,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ},
    )
    assert result.stdout.strip() == "yes"
