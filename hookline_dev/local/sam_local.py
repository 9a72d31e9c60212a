"""Readiness for `sam local invoke`, where Docker runs:

python -m hookline_dev.local.sam_local env-json [--write env.json]
    each function's environment variables (template.yaml's, parameters at their defaults)
    in the shape `sam local invoke --env-vars` reads: {"<LogicalId>": {"NAME": "value"}}
python -m hookline_dev.local.sam_local fill-events --url $HL --operator-key $OP [--out DIR]
    creates a community, an admin key, a webhook, two events (so a delivery), a space, a
    course and an incoming webhook on a running local stack, and writes events/*.json with
    their ids and keys filled in to DIR (default .hookline/events)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookline_dev import template
from hookline_dev.local.aws import TABLE_PREFIX
from hookline_dev.local.lambdas import FUNCTIONS, repo_root
from hookline_dev.local.stack import STATE_MACHINE_ARN


def env_vars() -> dict[str, dict[str, str]]:
    """{"ApiFunction": {...}, ...}: every variable each function gets; tables are named as the
    local stack names them, the state machine by its local ARN."""
    tables = {spec.env_var: f"{TABLE_PREFIX}-{spec.short_name}" for spec in template.table_specs()}
    local = {**tables, "RETRY_STATE_MACHINE_ARN": STATE_MACHINE_ARN}
    result: dict[str, dict[str, str]] = {}
    for logical_id in FUNCTIONS.values():
        values = template.function_environment(logical_id)
        result[logical_id] = {
            name: values.get(name, local.get(name, ""))
            for name in template.function_variable_names(logical_id)
        }
    return result


def env_json() -> str:
    return json.dumps(env_vars(), indent=2, sort_keys=True) + "\n"


class _Api:
    def __init__(self, base_url: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def call(self, method: str, path: str, key: str, body: Any = None) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {key}"},
            json=body,
            timeout=30,
        )
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


def fill_values(base_url: str, operator_key: str) -> dict[str, str]:
    """Create what the sample events name on a running local stack: placeholder -> value."""
    api = _Api(base_url)
    community = api.call(
        "POST",
        "/v1/communities",
        operator_key,
        {"name": "sam local", "site_url": "https://community.example"},
    )
    cid, key = community["id"], community["api_key"]["key"]
    base = f"/v1/communities/{cid}"
    webhook = api.call(
        "POST",
        f"{base}/webhooks",
        key,
        {"name": "sam local", "url": f"{api.base_url}/_inspect/sam-local", "events": ["*"]},
    )
    events = [
        api.call("POST", f"{base}/events", key, {"event": "post.created", "data": {"n": n}})
        for n in (1, 2)
    ]
    delivery_id = ""
    deadline = time.monotonic() + 30
    while not delivery_id and time.monotonic() < deadline:
        logs = api.call("GET", f"{base}/webhooks/{webhook['id']}/logs", key)
        items = logs if isinstance(logs, list) else logs.get("data", [])
        delivery_id = next((str(i["delivery_id"]) for i in items if i.get("delivery_id")), "")
        if not delivery_id:
            time.sleep(0.2)
    if not delivery_id:
        raise SystemExit("no delivery was recorded within 30 s: is the stack dispatching?")
    space = api.call("POST", f"{base}/spaces", key, {"name": "sam local space"})
    course = api.call("POST", f"{base}/courses", key, {"name": "sam local course"})
    incoming = api.call("POST", f"{base}/incoming-webhooks", key, {"name": "sam local"})
    return {
        "com_REPLACE": cid,
        "key_REPLACE": community["api_key"]["id"],
        "hk_REPLACE_WITH_YOUR_KEY": key,
        "wh_REPLACE": webhook["id"],
        "dlv_REPLACE": delivery_id,
        "evt_REPLACE_1": events[0]["id"],
        "evt_REPLACE_2": events[1]["id"],
        "sp_REPLACE": space["id"],
        "crs_REPLACE": course["id"],
        "REPLACE_WITH_YOUR_TOKEN": urlsplit(incoming["url"]).path.rsplit("/", 1)[-1],
    }


def fill_events(values: dict[str, str], source: Path, out: Path) -> list[Path]:
    """Write every events/*.json with the placeholders replaced (longest first); returns the
    written files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        for placeholder in sorted(values, key=len, reverse=True):
            text = text.replace(placeholder, values[placeholder])
        target = out / path.name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookline_dev.local.sam_local")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env-json", help="print (or --write) env.json")
    env.add_argument("--write", type=Path, help="write to this file instead of printing")
    fill = commands.add_parser("fill-events", help="fill events/*.json from a running stack")
    fill.add_argument("--url", required=True, help="the local stack's base URL ($HL)")
    fill.add_argument("--operator-key", required=True, help="its operator key ($OP)")
    fill.add_argument("--out", type=Path, default=Path(".hookline/events"))
    args = parser.parse_args(argv)
    if args.command == "env-json":
        if args.write:
            args.write.write_text(env_json(), encoding="utf-8")
        else:
            sys.stdout.write(env_json())
        return 0
    written = fill_events(
        fill_values(args.url, args.operator_key), repo_root() / "events", args.out
    )
    print(f"wrote {len(written)} events to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
